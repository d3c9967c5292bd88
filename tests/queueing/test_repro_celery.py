"""`tether repro --queue` on the Celery backend: the worker records `reproduces` and
notifies `not-reproduced`, as the embedded worker does (tests/feedback/test_repro.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from conftest import git, write
from execute.project import make_project
from feedback.receivers import http_receiver
from feedback.test_repro import EVALUATE
from helpers import exp_refs, record_of
from queueing.conftest import tether
from queueing.servers import RedisServer


def test_a_celery_worker_reproduces_and_notifies(repo: Path, redis_server: RedisServer) -> None:
    make_project(repo)
    write(repo / "evaluate.py", EVALUATE)
    write(repo / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
        "backend": "celery", "broker": redis_server.url, "state": redis_server.url,
        "namespace": f"t{uuid.uuid4().hex[:10]}"}}))
    git(repo, "add", "-A")
    git(repo, "add", "-f", "data/raw.txt")
    git(repo, "commit", "-qm", "celery, drifting evaluation, raw data")
    tether(repo, "run", "-n", "base")
    queued = tether(repo, "repro", "base", "--queue", "--tolerance", "rows=0")
    assert "queued base-repro, a reproduction of base" in queued.stdout, queued.stdout
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "DRIFT": "0.1"}
        worker = tether(repo, "worker", "--exit-when-idle", env=env, timeout=300, check=False)
        assert worker.returncode == 0, worker.stderr[-3000:]
        [message] = receiver.wait_for(1)
        assert len(receiver.requests) == 1
    assert "did not reproduce" in message.json()["title"]
    [ref] = [r for r in exp_refs(repo) if r.endswith("/base-repro")]
    assert record_of(repo, ref)["reproduces"]["name"] == "base"
    checked = tether(repo, "repro", "--check", "base-repro", check=False)
    assert checked.returncode == 18 and "acc" in checked.stdout
