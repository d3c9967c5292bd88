"""Notifications from a Celery worker: the same listener as the embedded one's."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from conftest import git, write
from feedback.receivers import http_receiver
from queueing.conftest import tether
from queueing.servers import RedisServer


def test_a_celery_worker_notifies_a_failure_once(project: Path, tmp_path: Path,
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
        worker = tether(project, "worker", "--exit-when-idle", "--ok-on-failed-runs", env=env,
                        timeout=300, check=False)
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "celery" in worker.stderr.lower(), worker.stderr[-3000:]
        [message] = receiver.wait_for(1)
        assert len(receiver.requests) == 1
    body = message.json()
    assert body["event"] == "failed" and "celery-bad" in body["title"]
    assert "training" in body["message"]
