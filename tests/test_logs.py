"""`tether logs`: whole stage logs from the commit, and following a running run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import only_record
from tether.experiments.manage import follow_run

SPEC = """\
stages:
  prepare:
    cmd: python -c "print('preparing data')"
  train:
    cmd: python -c "print('training model')"
"""


def test_every_stage_with_headers(repo: Path) -> None:
    write(repo / "tether.yaml", SPEC)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "spec")
    assert run_tether(repo, "run", "-q", "-n", "two-stages").returncode == 0
    proc = run_tether(repo, "logs", "two-stages")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == ["==> two-stages · prepare <==", "preparing data",
                     "==> two-stages · train <==", "training model"]
    one = run_tether(repo, "logs", "two-stages", "--stage", "train")
    assert one.stdout == "training model\n"
    assert run_tether(repo, "logs").stdout == proc.stdout  # default: the latest under HEAD
    unknown = run_tether(repo, "logs", "two-stages", "--stage", "evaluate")
    assert unknown.returncode == 2
    assert "no stage 'evaluate' (stages: prepare, train)" in unknown.stderr


def test_whole_log_even_when_the_record_holds_head_and_tail(repo: Path) -> None:
    code = "import sys\nfor i in range(40000): print(f'line {i:06d}')"
    proc = run_tether(repo, "run", "-q", "-n", "chatty", "--", "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert only_record(repo)["stages"][0]["log"]["truncated"] is True
    out = run_tether(repo, "logs", "chatty").stdout
    assert out.splitlines() == [f"line {i:06d}" for i in range(40000)]


def test_unknown_experiment(repo: Path) -> None:
    proc = run_tether(repo, "logs", "nobody")
    assert proc.returncode == 5
    assert "no experiment named 'nobody'" in proc.stderr


WAITER = """\
import os, time
print('first', flush=True)
while not os.path.exists('go'):
    time.sleep(0.05)
print('second', flush=True)
"""


def _wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("by_id", [True, False])
def test_follow_a_running_run(repo: Path, by_id: bool) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "-q", "-n", "slow", "--", "python", "-c", WAITER],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        runs = repo / ".tether" / "runs"
        _wait_for(lambda: any(runs.glob("*/logs/run.log")), "the run's live log")
        run_dir = next(runs.glob("*/logs/run.log")).parent.parent
        args = ["logs", "-f", run_dir.name[:14]] if by_id else ["logs", "-f"]
        follower = subprocess.Popen(
            [sys.executable, "-m", "tether", *args],
            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert follower.stdout is not None
        seen = [follower.stdout.readline(), follower.stdout.readline()]
        assert seen == [f"==> {run_dir.name} · run <==\n", "first\n"]  # while still running
        write(repo / "go", "")
        rest, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert rest == "second\n"
    finally:
        write(repo / "go", "")
        runner.wait(timeout=60)
    assert runner.returncode == 0
    # recorded now: the same words come from the commit
    assert run_tether(repo, "logs", "-f", "slow").stdout == "first\nsecond\n"


def test_follow_without_any_run(repo: Path) -> None:
    proc = run_tether(repo, "logs", "-f")
    assert proc.returncode == 5
    assert "no run found" in proc.stderr


def test_follow_run_reads_stages_in_order_until_recorded(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "prepare.log", "p1\n")
    # Each poll the fake clock lets the "run" progress one step.
    steps = [
        lambda: write(logs / "prepare.log", "p1\np2\n"),
        lambda: write(logs / "train.log", "t1\n"),
        lambda: write(tmp_path / "record.json", "{}"),
    ]
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        steps.pop(0)()

    chunks = list(follow_run(tmp_path, sleep=sleep))
    assert chunks == [("prepare", b"p1\n"), ("prepare", b"p2\n"), ("train", b"t1\n")]
    assert polls == [0.2, 0.2, 0.2]
    write(tmp_path / "logs" / "train.log", "t1\nt2\n")
    assert list(follow_run(tmp_path, "train")) == [("train", b"t1\nt2\n")]
