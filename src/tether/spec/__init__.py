"""The pipeline spec: loading `tether.yaml` / `tether.py`, validation, and the stage graph."""

from tether.spec.loader import find_spec, load_pipeline, load_python_spec, load_yaml_spec
from tether.spec.model import MetricRule, ParamRef, Pipeline, Stage
from tether.spec.values import parse_duration

__all__ = [
    "MetricRule",
    "ParamRef",
    "Pipeline",
    "Stage",
    "find_spec",
    "load_pipeline",
    "load_python_spec",
    "load_yaml_spec",
    "parse_duration",
]
