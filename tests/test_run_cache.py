"""The run-cache: a stage whose inputs match an earlier successful run is restored."""

from __future__ import annotations

from pathlib import Path

from conftest import git, run_tether, write
from helpers import records

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr]
    outs: [model]
    metrics: [metrics.json]
"""
TRAIN = """\
import json, os, tether
lr = tether.params()["lr"]
os.makedirs("model", exist_ok=True)
open("model/weights.txt", "w").write(f"weights for {lr}")
open("runs.log", "a").write(f"ran {lr}\\n")
json.dump({"acc": lr * 2}, open("metrics.json", "w"))
"""


def make(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "lr: 0.1\n")
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "model/\nruns.log\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "train")


def test_same_inputs_restore_outputs_instead_of_running(repo: Path) -> None:
    make(repo)
    assert run_tether(repo, "run", "-n", "a").returncode == 0
    assert run_tether(repo, "run", "-n", "b", "-S", "lr=0.2").returncode == 0
    dry = run_tether(repo, "run", "--dry", "-S", "lr=0.1")
    assert "restore  train:" in dry.stdout and "same inputs as a" in dry.stdout
    proc = run_tether(repo, "run", "-n", "c", "-S", "lr=0.1")
    assert proc.returncode == 0, proc.stderr
    assert "restored from the run cache (a)" in proc.stderr
    # It did not run again, yet the outputs and metrics are those of run a.
    assert (repo / "runs.log").read_text() == "ran 0.1\nran 0.2\n"
    assert (repo / "model" / "weights.txt").read_text() == "weights for 0.1"
    assert '"acc": 0.2' in (repo / "metrics.json").read_text()
    last = records(repo)[-1]
    assert last["metrics"] == {"acc": 0.2}
    assert last["stages"][0]["restored_from"]["name"] == "a"
    assert last["stages"][0]["outs"]["model"] == records(repo)[0]["stages"][0]["outs"]["model"]


def test_no_run_cache_runs_again(repo: Path) -> None:
    make(repo)
    assert run_tether(repo, "run", "-n", "a").returncode == 0
    assert run_tether(repo, "run", "-n", "b", "-S", "lr=0.2").returncode == 0
    proc = run_tether(repo, "run", "-n", "c", "-S", "lr=0.1", "--no-run-cache")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "runs.log").read_text() == "ran 0.1\nran 0.2\nran 0.1\n"
    assert records(repo)[-1]["stages"][0]["restored_from"] is None


def test_failed_runs_are_never_reused(repo: Path) -> None:
    make(repo)
    write(repo / "train.py", TRAIN + "raise SystemExit(1)\n")
    assert run_tether(repo, "run", "-n", "bad").returncode == 1
    proc = run_tether(repo, "run", "--dry")
    assert "run   train:" in proc.stdout


def test_apply_restores_outputs_from_the_cache(repo: Path) -> None:
    make(repo)
    assert run_tether(repo, "run", "-n", "a").returncode == 0
    assert run_tether(repo, "run", "-n", "b", "-S", "lr=0.2").returncode == 0
    assert (repo / "model" / "weights.txt").read_text() == "weights for 0.2"
    git(repo, "checkout", "params.yaml")
    (repo / "metrics.json").unlink()
    (repo / "tether.lock").unlink()
    proc = run_tether(repo, "apply", "a")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "model" / "weights.txt").read_text() == "weights for 0.1"
    assert "restored 1 output(s)" in proc.stderr
