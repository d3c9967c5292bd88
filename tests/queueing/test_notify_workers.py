"""Notifications from queue workers (Celery however started, learned reminders): the same
listener as `tether run`'s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import git, write
from feedback.receivers import http_receiver
from queueing.conftest import queue_status, tether
from queueing.servers import RedisServer

CELERY_WORKERS = {
    "tether worker": ["-m", "tether", "worker", "--exit-when-idle", "--ok-on-failed-runs"],
    # Started as a module (not through `tether worker`): notifies too.
    "python -m": ["-m", "tether.queue.celery.app", "--root", ".", "--exit-when-idle"],
}


@pytest.mark.parametrize("started", list(CELERY_WORKERS))
def test_a_celery_worker_notifies_a_failure_once(started: str, project: Path, tmp_path: Path,
                                                 redis_server: RedisServer) -> None:
    write(project / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
        "backend": "celery", "broker": redis_server.url, "state": redis_server.url,
        "namespace": f"t{uuid.uuid4().hex[:10]}"}}))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "celery")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "TRAIN_FAIL_CODE": "5",
               "TRAIN_FAIL_TIMES": f"{tmp_path / 'count'}:9"}
        tether(project, "run", "--queue", "-n", "celery-bad", env=env)
        worker = subprocess.run([sys.executable, *CELERY_WORKERS[started]], cwd=project,
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, **env})
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "celery" in worker.stderr.lower(), worker.stderr[-3000:]
        [message] = receiver.wait_for(1)
        assert len(receiver.requests) == 1
    body = message.json()
    assert body["event"] == "failed" and "celery-bad" in body["title"]
    assert "training" in body["message"]


def test_celery_dash_a_says_how_to_start_a_worker() -> None:
    import importlib

    app = importlib.import_module("tether.queue.celery.app")
    with pytest.raises(AttributeError, match="tether worker"):
        app.celery  # noqa: B018


def test_a_queued_run_gets_a_learned_reminder_and_then_succeeds(project: Path,
                                                                tmp_path: Path) -> None:
    """No `expected`: the worker learns p90 x 1.5 of the stage's last 5 successful runs."""
    gate = tmp_path / "go"
    write(project / "train.py", "import os, time\nprint('training', flush=True)\n"
          "wait = os.environ.get('TRAIN_WAIT_FOR')\n"
          "while wait and not os.path.exists(wait):\n    time.sleep(0.05)\n"
          "open('metrics.json', 'w').write('{\"acc\": 1}')\n")
    git(project, "commit", "-q", "-am", "train waits when told")
    for i in range(5):  # quick successful runs: the history the worker learns from
        tether(project, "run", "--force", "-n", f"quick{i}")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "TRAIN_WAIT_FOR": str(gate)}
        tether(project, "run", "--queue", "-n", "slow", "-S", "lr=0.2", env=env)  # not skipped
        worker = subprocess.Popen(
            [sys.executable, "-m", "tether", "worker", "--exit-when-idle"], cwd=project,
            env={**os.environ, **env}, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            # Reminders 2 and 3 of a learned sub-second duration may already be in.
            reminder = receiver.wait_for(1, timeout=60)[0]
            assert worker.poll() is None  # the run goes on
            gate.write_text("")
            _, err = worker.communicate(timeout=120)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err
    body = reminder.json()
    assert body["event"] == "reminder" and "slow" in body["title"]
    assert "learned: p90 of the last 5 successful runs" in body["message"], body["message"]
    assert all(r.json()["event"] == "reminder" for r in receiver.requests)
    [status] = [e for e in queue_status(project) if e["name"] == "slow"]
    assert status["state"] == "done"


def test_a_queued_runs_events_are_in_order_across_the_processes_that_sent_them(
        project: Path) -> None:
    """`queued` comes from `tether run --queue`, the rest from the worker (and, after a
    requeue, from another one): ordered by `sequence`, they are in the order they happened."""
    write(project / ".tether" / "config.yaml", "events:\n  local: true\n")
    git(project, "add", ".tether/config.yaml")
    git(project, "commit", "-q", "-m", "events in .tether/events.jsonl")
    tether(project, "run", "--queue", "-n", "ordered")
    tether(project, "worker", "--exit-when-idle")
    lines = (project / ".tether" / "events.jsonl").read_text().splitlines()
    events = [event for event in map(json.loads, lines)
              if event["subject"].endswith("/ordered") or event["data"].get("name") == "ordered"]
    kinds = [e["type"].removeprefix("dev.tether.run.") for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "finished", kinds
    sequences = [e["sequence"] for e in events]  # the file's order is the order of events
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences), events
    assert {len(s) for s in sequences} == {20}
