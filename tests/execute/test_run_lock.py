"""Two in-place runs of one work tree are serialized; --temp runs stay beside them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, run_tether, write
from helpers import records, repo_state
from tether.errors import EXIT_BUSY

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr]
    metrics: [metrics.json]
"""
# Says it started, waits for the test's go-ahead, and only then reads its params:
# a run that rewrote params.yaml meanwhile would show up in the metric.
TRAIN = """\
import json, os, pathlib, time
gate = pathlib.Path(os.environ["GATE"])
(gate / "started").touch()
while not (gate / "go").exists():
    time.sleep(0.01)
import tether
json.dump({"trained_lr": tether.params()["lr"]}, open("metrics.json", "w"))
"""


def _project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "lr: 0.5\n")
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "metrics.json\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "slow train")


def _start(root: Path, gate: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "-q", *args], cwd=root, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "GATE": str(gate)},
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_a_second_in_place_run_is_refused_while_the_first_runs(repo: Path, tmp_path: Path) -> None:
    _project(repo)
    gate = tmp_path / "gate"
    gate.mkdir()
    first = _start(repo, gate, "-n", "first")
    try:
        _wait_for(gate / "started", first)
        before = repo_state(repo)
        params_before = (repo / "params.yaml").read_text()
        second = run_tether(repo, "run", "-n", "second", "-S", "lr=0.3",
                            env={"GATE": str(gate)}, timeout=30)
        assert second.returncode == 13, second.stderr
        assert "a run is in progress in this work tree" in second.stderr
        assert f"/first (pid {first.pid}, started " in second.stderr
        assert (repo / "params.yaml").read_text() == params_before
        assert repo_state(repo) == before
        # A --temp run works in a worktree of its own: it runs while the first still waits.
        open_gate = tmp_path / "open"
        write(open_gate / "go", "")
        temp = run_tether(repo, "run", "-n", "beside", "--temp", "-S", "lr=0.2",
                          env={"GATE": str(open_gate)}, timeout=60)
        assert temp.returncode == 0, temp.stderr
        assert first.poll() is None
    finally:
        (gate / "go").touch()
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    by_name = {r["name"]: r for r in records(repo)}
    assert set(by_name) == {"first", "beside"}
    assert by_name["first"]["params"]["params.yaml"] == {"lr": 0.5}
    assert by_name["first"]["metrics"] == {"trained_lr": 0.5}
    assert by_name["beside"]["metrics"] == {"trained_lr": 0.2}


def test_wait_runs_after_the_first_one_ends(repo: Path, tmp_path: Path) -> None:
    _project(repo)
    gate = tmp_path / "gate"
    gate.mkdir()
    first = _start(repo, gate, "-n", "first")
    try:
        _wait_for(gate / "started", first)
        (gate / "started").unlink()
        second = _start(repo, gate, "-n", "second", "--wait", "-S", "lr=0.3")
        assert second.stderr is not None
        line = second.stderr.readline()  # it says whom it waits for before waiting
        assert "waiting for the run in progress in this work tree" in line, line
        assert f"(pid {first.pid}," in line
        assert not (gate / "started").exists()  # the second has not started its stage
        assert (repo / "params.yaml").read_text() == "lr: 0.5\n"
    finally:
        (gate / "go").touch()
        first.communicate(timeout=60)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    by_name = {r["name"]: r for r in records(repo)}
    assert by_name["first"]["metrics"] == {"trained_lr": 0.5}
    assert by_name["second"]["metrics"] == {"trained_lr": 0.3}
    assert by_name["second"]["params"]["params.yaml"] == {"lr": 0.3}


def test_the_lock_dies_with_its_process(repo: Path, tmp_path: Path) -> None:
    _project(repo)
    gate = tmp_path / "gate"
    gate.mkdir()
    first = _start(repo, gate, "-n", "first")
    _wait_for(gate / "started", first)
    first.kill()  # no cleanup runs: the kernel drops the flock with the last holder
    first.communicate(timeout=60)
    # Its stage still runs, orphaned, in the work tree: it holds the lock until it ends,
    # so no run starts beside it (and has its outputs and params written under it).
    (gate / "started").unlink()
    try:
        busy = run_tether(repo, "run", "-n", "beside", "-S", "lr=0.3", timeout=60,
                          env={"GATE": str(gate)})
        assert busy.returncode == EXIT_BUSY, busy.stderr
        assert "a run is in progress in this work tree" in busy.stderr
        assert "first" in busy.stderr
        assert not (gate / "started").exists()
        assert (repo / "params.yaml").read_text() == "lr: 0.5\n"
    finally:
        (gate / "go").touch()  # the orphan finishes; the next run then takes the lock
    proc = run_tether(repo, "run", "--wait", "-n", "after", env={"GATE": str(gate)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads((repo / ".tether" / "run.lock").read_text())["name"] == "after"
    assert [r["name"] for r in records(repo)] == ["after"]  # first was never recorded
