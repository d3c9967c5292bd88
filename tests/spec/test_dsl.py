"""The Python DSL compiles through the YAML validator: same JSON, same located problems."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tether.errors import SpecError
from tether.spec import load_pipeline, load_python_spec

from .conftest import WriteSpec, problems

YAML = """
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py]
    outs: [data/prepared]
    params: [prepare.split]
    timeout: 1h30m
    env: {THREADS: 4}
  train:
    foreach: [small, large]
    do:
      cmd: python train.py --size ${item}
      deps: [data/prepared]
      outs: ["model-${item}.pkl"]
  sweep:
    matrix: {model: [cnn, mlp], lr: [0.1, 0.01]}
    cmd: python sweep.py ${item.model} ${item.lr}
    retry_on: [137]
metrics:
  acc: {direction: max, tolerance: 1%}
  loss: {direction: min, tolerance: 0.01}
"""

DSL_SPELLED_OUT = """
from tether.dsl import Pipeline, stage

pipeline = Pipeline(metrics={"acc": {"direction": "max", "tolerance": "1%"}})
pipeline.metric("loss", "min", 0.01)
pipeline.add(stage("prepare", cmd="python prepare.py", deps=["prepare.py"],
                   outs=["data/prepared"], params=["prepare.split"], timeout=5400,
                   env={"THREADS": "4"}))
for size in ["small", "large"]:
    pipeline.add(stage(f"train@{size}", cmd=[f"python train.py --size {size}"],
                       deps=["data/prepared"], outs=[f"model-{size}.pkl"]))
for model in ["cnn", "mlp"]:
    for lr in [0.1, 0.01]:
        pipeline.add(stage(f"sweep@{model}-{lr}", cmd=f"python sweep.py {model} {lr}",
                           retry_on=[137]))
"""

DSL_HELPERS = """
from tether.dsl import Pipeline, stage

pipeline = Pipeline(metrics={"acc": {"direction": "max", "tolerance": "1%"},
                             "loss": {"direction": "min", "tolerance": 0.01}})
pipeline.add(stage("prepare", cmd="python prepare.py", deps=["prepare.py"],
                   outs=["data/prepared"], params=["prepare.split"], timeout="90m",
                   env={"THREADS": 4}))
pipeline.foreach("train", ["small", "large"], cmd="python train.py --size ${item}",
                 deps=["data/prepared"], outs=["model-${item}.pkl"])
pipeline.matrix("sweep", {"model": ["cnn", "mlp"], "lr": [0.1, 0.01]},
                cmd="python sweep.py ${item.model} ${item.lr}", retry_on=[137])
"""


def _canonical(root: Path) -> str:
    return json.dumps(load_pipeline(root).to_json(), sort_keys=True)


@pytest.mark.parametrize("dsl", [DSL_SPELLED_OUT, DSL_HELPERS])
def test_yaml_and_dsl_are_identical(tmp_path: Path, dsl: str) -> None:
    yaml_root, dsl_root = tmp_path / "y", tmp_path / "p"
    yaml_root.mkdir()
    dsl_root.mkdir()
    (yaml_root / "tether.yaml").write_text(YAML.lstrip())
    (dsl_root / "tetherfile.py").write_text(dsl.lstrip())
    assert _canonical(dsl_root) == _canonical(yaml_root)
    assert load_pipeline(dsl_root).source == dsl_root / "tetherfile.py"


def test_dsl_problems_name_the_calling_line(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline, stage

        pipeline = Pipeline(metrics={"acc": {"direction": "up"}})
        pipeline.add(stage("a", cmd="echo", timeout="abc"))
        pipeline.add(
            stage("b", cmd="echo", stall_timout="10m"),
        )
        pipeline.add(stage("a", cmd="again"))
        pipeline.foreach("t", ["x"], cmd="echo ${itme}")
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:3: metrics.acc.direction: expected min or max, found 'up'",
        "tetherfile.py:4: stages.a.timeout: expected a duration like 30s, 5m or 2h, found 'abc'",
        "tetherfile.py:6: stages.b.stall_timout: unknown key 'stall_timout'; "
        "did you mean 'stall_timeout'?",
        "tetherfile.py:8: stages.a: duplicate key 'a' (first at line 4)",
        "tetherfile.py:9: stages.t.do.cmd: unknown variable ${itme} (available here: ${item})",
    ]


def test_dsl_lines_through_a_helper_module(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import stage

        def make(name):
            return stage(name, cmd="echo", retries=-1)
    """,
        name="helpers_for_spec.py",
    )
    write_spec(
        """
        from tether.dsl import Pipeline
        from helpers_for_spec import make

        pipeline = Pipeline()
        pipeline.add(make("a"))
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:5: stages.a.retries: expected an integer >= 0, found -1"
    ]
    assert "helpers_for_spec" not in sys.modules
    assert str(tmp_path) not in sys.path


def test_dsl_graph_problems(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline, stage
        pipeline = Pipeline()
        pipeline.add(stage("a", cmd="echo", deps=["y"], outs=["x"]))
        pipeline.add(stage("b", cmd="echo", deps=["x"], outs=["y"]))
    """,
        name="tetherfile.py",
    )
    (problem,) = problems(tmp_path)
    assert problem.startswith("tetherfile.py:3: stages form a cycle: a -> b -> a")


def test_exception_while_running(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline

        pipeline = Pipeline()
        1 / 0
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:4: error while running the spec: ZeroDivisionError: division by zero"
    ]


def test_syntax_error(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline
        pipeline = Pipeline(
    """,
        name="tetherfile.py",
    )
    (problem,) = problems(tmp_path)
    assert problem.startswith("tetherfile.py:2: syntax error:")


def test_missing_pipeline(write_spec: WriteSpec, tmp_path: Path) -> None:
    path = write_spec("x = 1\n", name="tetherfile.py")
    with pytest.raises(SpecError) as caught:
        load_python_spec(path, tmp_path)
    assert caught.value.problems == [
        "tetherfile.py: expected a module-level `pipeline = Pipeline(...)`, found nothing"
    ]


def test_wrong_stage_name_type(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline, stage
        pipeline = Pipeline()
        pipeline.add(stage(3, cmd="echo"))
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:3: error while running the spec: TypeError: a stage name must be a string, "
        "not int"
    ]


def test_dsl_names_still_checked(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline, stage
        pipeline = Pipeline()
        pipeline.add(stage("a@", cmd="echo"), stage("x y", cmd="echo"))
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:3: stages.a@: stage names may only contain letters, digits, '_', '.' "
        "and '-' ('@' is reserved for foreach/matrix stages)",
        "tetherfile.py:3: stages.x y: stage names may only contain letters, digits, '_', '.' "
        "and '-'",
    ]


def test_dsl_collision_with_generated(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(
        """
        from tether.dsl import Pipeline, stage
        pipeline = Pipeline()
        pipeline.add(stage("train@a", cmd="echo"))
        pipeline.foreach("train", ["a", "b"], cmd="echo ${item}")
    """,
        name="tetherfile.py",
    )
    assert problems(tmp_path) == [
        "tetherfile.py:4: stages.train.do: stage 'train@a' is declared twice (also at line 3)"
    ]
