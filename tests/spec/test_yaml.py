"""Valid YAML specs and their normalized form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tether.errors import SpecError
from tether.spec import MetricRule, ParamRef, load_pipeline, load_yaml_spec

from .conftest import WriteSpec

FULL = """
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw/]
    outs: [data/prepared]
    params: [prepare.split, other.yaml:model.depth]
    metrics: [metrics.json]
    plots: [steps.jsonl]
    wdir: .
    env: {OMP_NUM_THREADS: "1", SEED: 7, DEBUG: true}
    timeout: 2h
    stall_timeout: 10m
    expected: 30m
    retries: 2
    retry_on: [137, 143]
    require: [gpu, a100, gpu]
  train:
    foreach: [small, large]
    do:
      cmd: python train.py --size ${item}
      deps: [data/prepared]
      outs: ["model-${item}.pkl"]
  sweep:
    matrix: {model: [cnn, mlp], lr: [0.1, 0.01]}
    cmd: python sweep.py ${item.model} ${item.lr}
metrics:
  acc: {direction: max, tolerance: 1%}
  loss: {direction: min, tolerance: 0.01}
  f1: {direction: max}
"""


def _defaults(cmd: str, **fields: object) -> dict[str, object]:
    stage: dict[str, object] = {
        "cmd": [cmd],
        "wdir": ".",
        "deps": [],
        "outs": [],
        "params": [],
        "metrics": [],
        "plots": [],
        "env": {},
        "timeout": None,
        "stall_timeout": None,
        "expected": None,
        "retries": 0,
        "retry_on": [],
        "require": [],
    }
    stage.update(fields)
    return stage


def test_full_spec_normalizes_exactly(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec(FULL)
    pipeline = load_pipeline(tmp_path)
    expected: dict[str, Any] = {
        "version": 1,
        "stages": {
            "prepare": {
                "cmd": ["python prepare.py"],
                "wdir": ".",
                "deps": ["prepare.py", "data/raw"],
                "outs": ["data/prepared"],
                "params": [
                    {"file": "params.yaml", "key": "prepare.split"},
                    {"file": "other.yaml", "key": "model.depth"},
                ],
                "metrics": ["metrics.json"],
                "plots": ["steps.jsonl"],
                "env": {"OMP_NUM_THREADS": "1", "SEED": "7", "DEBUG": "true"},
                "timeout": 7200.0,
                "stall_timeout": 600.0,
                "expected": 1800.0,
                "retries": 2,
                "retry_on": [137, 143],
                "require": ["a100", "gpu"],
            },
            "train@small": _defaults(
                "python train.py --size small", deps=["data/prepared"], outs=["model-small.pkl"]
            ),
            "train@large": _defaults(
                "python train.py --size large", deps=["data/prepared"], outs=["model-large.pkl"]
            ),
            "sweep@cnn-0.1": _defaults("python sweep.py cnn 0.1"),
            "sweep@cnn-0.01": _defaults("python sweep.py cnn 0.01"),
            "sweep@mlp-0.1": _defaults("python sweep.py mlp 0.1"),
            "sweep@mlp-0.01": _defaults("python sweep.py mlp 0.01"),
        },
        "metrics": {
            "acc": {"direction": "max", "tolerance": {"kind": "rel", "value": 0.01}},
            "loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.01}},
            "f1": {"direction": "max", "tolerance": {"kind": "abs", "value": 0.0}},
        },
    }
    assert pipeline.to_json() == expected
    assert list(pipeline.to_json()["stages"]) == list(expected["stages"])
    assert pipeline.source == tmp_path / "tether.yaml"
    prepare = pipeline.stages["prepare"]
    assert prepare.line == 2
    assert prepare.params[1] == ParamRef("other.yaml", "model.depth")
    assert prepare.env["SEED"] == "7"
    assert pipeline.stages["train@small"].line == 17
    assert pipeline.metrics["acc"] == MetricRule("acc", "max", "rel", 0.01)
    json.dumps(pipeline.to_json(), sort_keys=True)


def test_wdir_joins_every_path(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          fit:
            wdir: models/./fit/
            cmd: [python fit.py, python check.py]
            deps: [fit.py, ../../data/x.csv]
            outs: [out/]
            params: [lr, ../../conf.yaml:a.b]
            metrics: m.json
            plots: [p.jsonl]
    """)
    stage = load_pipeline(tmp_path).stages["fit"]
    assert stage.wdir == "models/fit"
    assert stage.cmd == ("python fit.py", "python check.py")
    assert stage.deps == ("models/fit/fit.py", "data/x.csv")
    assert stage.outs == ("models/fit/out",)
    assert stage.params == (ParamRef("models/fit/params.yaml", "lr"), ParamRef("conf.yaml", "a.b"))
    assert stage.metrics == ("models/fit/m.json",)


def test_foreach_mapping_and_item_fields(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        version: 1
        stages:
          train:
            foreach:
              small: {size: 10, retries: 1}
              big: {size: 1000, retries: 3}
            do:
              cmd: python train.py --name ${key} --size ${item.size} --cost $${HOME}
              retries: ${item.retries}
              timeout: ${item.size}
              env: {SIZE: "${item.size}"}
          eval:
            foreach: [{name: a}, {name: b}]
            do:
              cmd: echo ${item.name}
    """)
    pipeline = load_pipeline(tmp_path)
    assert list(pipeline.stages) == ["train@small", "train@big", "eval@0", "eval@1"]
    big = pipeline.stages["train@big"]
    assert big.cmd == ("python train.py --name big --size 1000 --cost ${HOME}",)
    assert big.retries == 3
    assert big.timeout == 1000.0
    assert dict(big.env) == {"SIZE": "1000"}
    assert pipeline.stages["eval@1"].cmd == ("echo b",)


def test_plain_stage_keeps_dollar_braces(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          show:
            cmd: echo ${HOME}
    """)
    assert load_pipeline(tmp_path).stages["show"].cmd == ("echo ${HOME}",)


def test_merge_keys_and_anchors(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        defaults: &defaults
          timeout: 1h
          retries: 1
        stages:
          a:
            <<: *defaults
            cmd: echo a
            retries: 4
    """)
    # `defaults` is not a known top-level key: anchors must live inside known keys.
    with pytest.raises(SpecError, match="unknown key 'defaults'"):
        load_pipeline(tmp_path)
    write_spec("""
        stages:
          a: &base
            cmd: echo a
            timeout: 1h
            retries: 1
          b:
            <<: *base
            cmd: echo b
            retries: 4
    """)
    b = load_pipeline(tmp_path).stages["b"]
    assert (b.cmd, b.timeout, b.retries) == (("echo b",), 3600.0, 4)


def test_yml_extension_and_explicit_loader(write_spec: WriteSpec, tmp_path: Path) -> None:
    path = write_spec("stages: {a: {cmd: echo}}\n", name="tether.yml")
    assert list(load_pipeline(tmp_path).stages) == ["a"]
    assert list(load_yaml_spec(path, tmp_path).stages) == ["a"]


def test_load_pipeline_needs_exactly_one_spec(write_spec: WriteSpec, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_pipeline(tmp_path)
    assert caught.value.hint is not None and "tether init" in caught.value.hint
    write_spec("stages: {a: {cmd: echo}}\n")
    write_spec("from tether.dsl import Pipeline\npipeline = Pipeline()\n", name="tetherfile.py")
    with pytest.raises(SpecError, match="keep exactly one"):
        load_pipeline(tmp_path)
