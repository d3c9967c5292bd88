"""Workers say what they can run: requirements (`--require`, a stage's `require:`) against
worker tags (`tether worker --tags`), end to end on both backends with real workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from conftest import git, write
from helpers import exp_refs
from queueing.conftest import queue_status, start_worker, tether
from queueing.servers import RedisServer
from queueing.test_celery import _celery_project, worker_procs  # noqa: F401 (a fixture)
from tether.queue.celery.backend import open_backend
from tether.queue.client import QueueRequest, enqueue

GPU_SPEC = """\
stages:
  train:
    cmd: python train.py
    params: [lr, epochs]
    metrics: [metrics.json]
    require: [gpu]
"""


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


def _recorded_names(root: Path) -> list[str]:
    return sorted(ref.rsplit("/", 1)[1] for ref in exp_refs(root)
                  if ref.startswith("refs/tether/exps/"))


def test_a_worker_runs_only_what_its_tags_allow(project: Path, workers: list[Any]) -> None:
    tether(project, "run", "--queue", "-n", "plain", "--repeat", "2")
    tether(project, "run", "--queue", "-n", "big", "--require", "gpu", "--require", "a100")
    write(project / "tether.yaml", GPU_SPEC)  # uncommitted: in the snapshot
    queued = tether(project, "run", "--queue", "-n", "spec").stderr
    assert "tether worker --tags gpu" in queued
    needs = {row["name"]: row["requires"] for row in queue_status(project)}
    assert needs == {"plain-1": [], "plain-2": [], "big": ["a100", "gpu"], "spec": ["gpu"]}

    # No tags: it runs the plain entries, then exits although others still wait.
    cpu = tether(project, "worker", "--exit-when-idle")
    assert "event=worker_stopped" in cpu.stderr and "ran=2 done=2" in cpu.stderr
    rows = {row["name"]: row for row in queue_status(project)}
    assert [rows[n]["state"] for n in ("plain-1", "plain-2", "big", "spec")] == [
        "done", "done", "queued", "queued"]
    assert "no live worker serves queue 'default'" in str(rows["big"]["blocked"])

    # A live worker that lacks the tags: the status says which and why.
    idle = start_worker(project, "--tags", "gpu")
    workers.append(idle)
    _wait_for(lambda: "has gpu" in str(queue_status(project)[2]["blocked"]))
    rows = {row["name"]: row for row in queue_status(project)}
    assert "needs tags a100,gpu (no worker has a100)" in str(rows["big"]["blocked"])
    _wait_for(lambda: {r["name"]: r["state"] for r in queue_status(project)}["spec"] == "done")
    idle.send_signal(signal.SIGTERM)
    assert idle.wait(30) == 0
    table = tether(project, "queue", "status").stdout
    assert "a100,gpu" in table and "no live worker serves queue 'default'" in table

    tether(project, "worker", "--tags", "gpu,a100", "--tags", "cuda=12", "--exit-when-idle")
    assert {row["state"] for row in queue_status(project)} == {"done"}
    assert _recorded_names(project) == ["big", "plain-1", "plain-2", "spec"]


def test_bad_tags_and_requirements_are_refused(project: Path) -> None:
    for args in (("run", "--require", "gpu"), ("run", "--queue", "--require", "two words"),
                 ("worker", "--tags", "gpu,,a100"), ("worker", "--tags", "gpu;rm")):
        proc = tether(project, *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "tag" in proc.stderr or "--require goes with --queue" in proc.stderr
    assert queue_status(project) == []


def test_celery_routes_entries_to_workers_that_can_run_them(
    project: Path, tmp_path: Path, redis_server: RedisServer,
    worker_procs: list[Any],  # noqa: F811
) -> None:
    cp = _celery_project(project, tmp_path, worker_procs, broker=redis_server.url)
    plain = cp.enqueue(2, "plain")
    gpu = [e.id for e in enqueue(project, QueueRequest(name="gpu", repeat=2, requires=("gpu",)))]
    cpu = cp.worker("--exit-when-idle", count_runs=False)
    assert cpu.wait(120) == 0, cp.worker_logs()[-4000:]
    assert cp.states(plain) == ["done", "done"]
    backend = open_backend(project)
    try:
        waiting = [backend.get(i) for i in gpu]
        # Never offered to the untagged worker: still queued, no attempt consumed.
        assert [(e.state, e.attempt) for e in waiting if e] == [("queued", 0)] * 2
        tagged = cp.worker("--tags", "gpu", "--exit-when-idle", count_runs=False)
        cp.wait_done(gpu)
        assert tagged.wait(120) == 0
        ran_on = {str(e.worker).rsplit(":", 1)[1] for i in gpu if (e := backend.get(i))}
        assert ran_on == {str(tagged.pid)}
        assert backend.live_workers(time.time()) == []  # both dropped their registration
    finally:
        backend.close()
    assert sorted(cp.recorded("plain")) == ["plain-1", "plain-2"]
    assert sorted(cp.recorded("gpu")) == ["gpu-1", "gpu-2"]
    git(project, "status", "--porcelain")
    assert os.path.exists(project / ".tether")
