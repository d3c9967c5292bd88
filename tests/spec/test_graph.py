"""The stage graph: edges from outputs to dependencies, order, and graph problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import SpecError
from tether.spec import load_pipeline

from .conftest import WriteSpec, problems

DIAMOND = """
stages:
  report:
    cmd: python report.py
    deps: [models, eval/scores.json]
  prepare:
    cmd: python prepare.py
    deps: [data/raw]
    outs: [data/prepared]
  train:
    foreach: [a, b]
    do:
      cmd: python train.py ${item}
      deps: ["data/prepared/${item}.csv"]
      outs: ["models/${item}.pkl"]
  evaluate:
    cmd: python eval.py
    deps: [models/a.pkl]
    outs: [eval]
  lonely:
    cmd: echo
"""


def test_edges_and_order(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(DIAMOND)
    pipeline = load_pipeline(tmp_path)
    assert pipeline.upstream("train@a") == {"prepare"}
    assert pipeline.upstream("report") == {"train@a", "train@b", "evaluate"}
    assert pipeline.downstream("prepare") == {"train@a", "train@b"}
    assert pipeline.downstream("train@a") == {"evaluate", "report"}
    assert pipeline.order() == ["prepare", "train@a", "train@b", "evaluate", "report", "lonely"]
    assert pipeline.order(["evaluate"]) == ["prepare", "train@a", "evaluate"]
    assert pipeline.order(["train"]) == ["prepare", "train@a", "train@b"]
    assert pipeline.order(["lonely", "train@b"]) == ["prepare", "train@b", "lonely"]


def test_unknown_stage_suggests(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(DIAMOND)
    pipeline = load_pipeline(tmp_path)
    with pytest.raises(SpecError) as caught:
        pipeline.order(["evalute"])
    assert "unknown stage 'evalute'" in str(caught.value)
    assert caught.value.hint == "did you mean 'evaluate'?"
    with pytest.raises(SpecError):
        pipeline.upstream("nope")


def test_cycle(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            deps: [y]
            outs: [x]
          b:
            cmd: echo
            deps: [x/part]
            outs: [y]
          c:
            cmd: echo
            deps: [y]
    """)
    assert problems(tmp_path) == [
        "tether.yaml:2: stages form a cycle: a -> b -> a (b (line 6) depends on 'x/part', "
        "an output of a; a (line 2) depends on 'y', an output of b)"
    ]


def test_output_is_dependency_of_an_upstream_stage(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          load:
            cmd: echo
            deps: [data/clean.csv]
            outs: [data/raw.csv]
          clean:
            cmd: echo
            deps: [data/raw.csv]
            outs: [data/clean.csv]
    """)
    (problem,) = problems(tmp_path)
    assert problem.startswith("tether.yaml:2: stages form a cycle: load -> clean -> load")
    assert "load (line 2) depends on 'data/clean.csv', an output of clean" in problem


def test_output_is_own_dependency(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            deps: [data]
            outs: [data/out.csv]
    """)
    assert problems(tmp_path) == [
        "tether.yaml:2: stages.a.outs: 'data/out.csv' is also a dependency of the same stage "
        "('data')"
    ]


def test_two_writers(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            outs: [model.pkl, data]
          b:
            cmd: echo
            outs: [model.pkl, data/sub/x]
          c:
            cmd: echo
            outs: [c, c/]
    """)
    assert problems(tmp_path) == [
        "tether.yaml:5: stages.b.outs: 'model.pkl' is also an output of stage 'a' "
        "(tether.yaml:2); each output needs exactly one writer",
        "tether.yaml:5: stages.b.outs: 'data/sub/x' is overlapping 'data', an output of stage "
        "'a' (tether.yaml:2); each output needs exactly one writer",
    ]
