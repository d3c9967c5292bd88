"""The pipeline spec: loading `tether.yaml` / `tetherfile.py`, validation, and the stage graph.

The loader (and PyYAML with it) is imported only when a spec must really be
parsed: a run whose spec is unchanged is served from the spec cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.spec.model import DataSource, MetricRule, ParamRef, Pipeline, Stage
from tether.spec.values import parse_duration

if TYPE_CHECKING:
    from tether.spec.loader import find_spec, load_pipeline, load_python_spec, load_yaml_spec

__all__ = [
    "DataSource",
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

_LOADER_NAMES = frozenset({"find_spec", "load_pipeline", "load_python_spec", "load_yaml_spec"})


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from tether.spec import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'tether.spec' has no attribute {name!r}")
