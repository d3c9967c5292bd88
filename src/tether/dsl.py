"""The Python DSL for `tetherfile.py`: `pipeline = Pipeline(); pipeline.add(stage(...))`."""

from tether.spec.dsl import Pipeline, StageDecl, stage

__all__ = ["Pipeline", "StageDecl", "stage"]
