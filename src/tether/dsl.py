"""The Python DSL for `tether.py`: `pipeline = Pipeline(); pipeline.add(stage(...))`."""

from tether.spec.dsl import Pipeline, StageDecl, stage

__all__ = ["Pipeline", "StageDecl", "stage"]
