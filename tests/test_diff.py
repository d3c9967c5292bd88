"""`tether diff`: params and metrics side by side, direction-aware, and the code diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from tether.experiments.compare import judge

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train]
    metrics: [metrics.json]
metrics:
  acc: {direction: max, tolerance: 1%}
  loss: {direction: min, tolerance: 0.05}
"""

# acc rises with lr; loss falls a little; `size` has no rule; `extra` only sometimes.
TRAIN = """\
import json, tether
p = tether.params()["train"]
metrics = {"acc": 0.5 + p["lr"], "loss": 1.0 - p["lr"] / 10, "size": p["depth"] * 10}
if p["depth"] > 3:
    metrics["extra"] = 1
json.dump(metrics, open("metrics.json", "w"))
"""


def make_project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "train:\n  lr: 0.1\n  depth: 3\n")
    write(root / "other.yaml", "seed: 1\n")
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "metrics.json\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")


def record(root: Path, name: str, *overrides: str) -> None:
    sets = [arg for value in overrides for arg in ("-S", value)]
    proc = run_tether(root, "run", "-q", "--force", "-n", name, *sets)
    assert proc.returncode == 0, proc.stderr


def diff_json(root: Path, *args: str) -> dict[str, Any]:
    proc = run_tether(root, "diff", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.fixture
def project(repo: Path) -> Path:
    make_project(repo)
    record(repo, "base")
    record(repo, "tuned", "train.lr=0.3", "train.depth=4")
    return repo


def test_two_experiments_side_by_side(project: Path) -> None:
    data = diff_json(project, "tuned", "base")
    assert data["a"]["label"] == "tuned" and data["b"]["label"] == "base"
    params = {row["key"]: row for row in data["params"]}
    assert params["train.lr"] == {"key": "train.lr", "a": 0.3, "b": 0.1, "changed": True}
    assert params["train.depth"]["changed"] is True
    metrics = {row["key"]: row for row in data["metrics"]}
    assert metrics["acc"]["mark"] == "better"
    assert metrics["acc"]["change"] == pytest.approx(0.2)
    assert metrics["acc"]["relative"] == pytest.approx(0.2 / 0.6)
    # loss fell by 0.02, within its absolute tolerance of 0.05
    assert metrics["loss"]["mark"] == "same"
    assert metrics["size"]["mark"] == "changed"  # no rule: only changed or same
    assert metrics["extra"]["mark"] == "only-a"


def test_reversed_order_is_worse(project: Path) -> None:
    metrics = {row["key"]: row for row in diff_json(project, "base", "tuned")["metrics"]}
    assert metrics["acc"]["mark"] == "worse"
    assert metrics["extra"]["mark"] == "only-b"


def test_params_of_other_files_are_prefixed(project: Path) -> None:
    write(project / "tether.yaml", SPEC.replace("params: [train]",
                                                "params: [train, other.yaml:seed]"))
    git(project, "commit", "-qam", "seed param")
    record(project, "seeded", "other.yaml:seed=7")
    params = {row["key"]: row for row in diff_json(project, "seeded", "tuned")["params"]}
    assert params["other.yaml:seed"]["a"] == 7
    assert params["other.yaml:seed"]["b"] is None


def test_text_and_markdown(project: Path) -> None:
    text = run_tether(project, "diff", "tuned", "base").stdout
    assert "A: tuned" in text and "B: base" in text
    assert any(line.split()[:3] == ["train.lr", "0.3", "0.1"] for line in text.splitlines())
    assert "▲ better" in text
    md = run_tether(project, "diff", "--md", "tuned", "base").stdout
    assert "| param | A | B |" in md
    assert "| train.lr | 0.3 | 0.1 |" in md


def test_defaults_latest_against_parent_baseline(project: Path) -> None:
    write(project / "train.py", TRAIN + "# v2\n")
    git(project, "commit", "-qam", "v2")
    record(project, "next", "train.lr=0.4")
    data = diff_json(project)
    assert data["a"]["label"] == "next"
    assert data["b"]["label"] == "tuned"  # the latest successful one on the parent commit


def test_default_b_is_the_workspace(project: Path) -> None:
    write(project / "metrics.json", json.dumps({"acc": 0.9, "loss": 0.97, "size": 40}))
    write(project / "params.yaml", "train:\n  lr: 0.5\n  depth: 4\n")
    data = diff_json(project)
    assert data["a"]["label"] == "tuned"
    assert data["b"]["label"] == "workspace" and data["b"]["commit"] is None
    assert {row["key"]: row["b"] for row in data["params"]}["train.lr"] == 0.5
    metrics = {row["key"]: row for row in data["metrics"]}
    assert metrics["acc"]["mark"] == "worse"  # 0.8 in A against 0.9 on disk
    assert metrics["extra"]["mark"] == "only-a"
    assert diff_json(project, "tuned", "workspace") == data


def test_code_diff_excludes_tether_files(project: Path) -> None:
    write(project / "notes.txt", "tuned idea\n")
    record(project, "noted")
    out = run_tether(project, "diff", "--code", "noted", "base").stdout
    assert "+tuned idea" in out  # from B's tree to A's
    assert "-  lr: 0.1" in out and "+  lr: 0.3" in out
    assert ".tether/" not in out
    # against the workspace (params.yaml holds 0.3 on disk): from the workspace to A
    ws = run_tether(project, "diff", "--code", "base", "workspace")
    assert ws.returncode == 0, ws.stderr
    assert "-  lr: 0.3" in ws.stdout and "+  lr: 0.1" in ws.stdout
    assert ".tether/" not in ws.stdout


def test_no_experiment_under_head(repo: Path) -> None:
    proc = run_tether(repo, "diff")
    assert proc.returncode == 5
    assert "no experiment is recorded against HEAD" in proc.stderr


@pytest.mark.parametrize(
    ("change", "reference", "rule", "mark"),
    [
        (0.5, 10.0, {"direction": "max", "tolerance": {"kind": "rel", "value": 0.1}}, "same"),
        (2.0, 10.0, {"direction": "max", "tolerance": {"kind": "rel", "value": 0.1}}, "better"),
        (2.0, 10.0, {"direction": "min", "tolerance": {"kind": "abs", "value": 1.0}}, "worse"),
        (-2.0, 10.0, {"direction": "min", "tolerance": {"kind": "abs", "value": 1.0}}, "better"),
        (1.0, 10.0, {"direction": "min", "tolerance": {"kind": "abs", "value": 1.0}}, "same"),
        (0.0, 0.0, None, "same"),
        (0.1, 0.0, None, "changed"),
    ],
)
def test_judge(change: float, reference: float, rule: Any, mark: str) -> None:
    assert judge(change, reference, rule) == mark
