"""`--exit-when-idle`: a worker exits as soon as nothing it can run is waiting or running
in its queues, and never while something is: the same decision on the embedded queue and
on Celery (Redis and RabbitMQ brokers), with the schedules' last tick taken before it.

The decision (`Worker.idle`) is checked state by state on both backends; then real
worker processes, on each broker, run what was queued (and a schedule's catch-up that
falls due as they start) and exit 0 without being told.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import git, write
from queueing.contract import T0, make_entry
from queueing.servers import RabbitServer, RedisServer
from tether.queue.base import DONE, RETRYING, Outcome, QueueBackend
from tether.queue.client import QueueRequest, enqueue, open_queue
from tether.queue.embedded import EmbeddedQueue
from tether.queue.worker import Worker, WorkerOptions

pytest.importorskip("celery")


def _celery_config(project: Path, broker: str, state: str | None = None) -> None:
    section: dict[str, Any] = {"backend": "celery", "broker": broker, "git_remote": None,
                               "namespace": f"i{uuid.uuid4().hex[:10]}"}
    if state is not None:
        section["state"] = state
    write(project / ".tether" / "config.yaml", yaml.safe_dump({"queue": section}))
    git(project, "add", "-f", ".tether/config.yaml")
    git(project, "commit", "-q", "-m", "celery queue")


@pytest.fixture(params=["embedded", "celery"])
def backend(request: pytest.FixtureRequest, project: Path) -> Iterator[QueueBackend]:
    if request.param == "embedded":
        queue: QueueBackend = EmbeddedQueue(project / ".tether" / "queue.db",
                                            project / ".tether" / "logs")
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        _celery_config(project, redis.url)
        queue = open_queue(project)
    yield queue
    queue.close()


def _worker(project: Path, backend: QueueBackend, **options: Any) -> Worker:
    return Worker(project, backend, WorkerOptions(exit_when_idle=True, warm=False,
                                                  clock=lambda: T0 + 1, **options))


def test_idle_means_nothing_it_can_run_waits_or_runs(project: Path,
                                                     backend: QueueBackend) -> None:
    assert _worker(project, backend).idle()  # an empty queue: at once, no second round
    entry = make_entry()
    backend.enqueue([entry], T0)
    assert not _worker(project, backend).idle()  # queued (its wake-up may be in flight)
    assert _worker(project, backend, queues=["gpu"]).idle()  # not one of its queues
    claimed = backend.claim(["default"], "elsewhere:1", T0, 60)
    assert claimed is not None
    assert not _worker(project, backend).idle()  # running elsewhere: it may come back
    backend.finish(entry.id, claimed.attempt, "elsewhere:1",
                   Outcome(RETRYING, not_before=T0 + 3600), T0)
    assert not _worker(project, backend).idle()  # retrying later is still waiting
    backend.remove([entry.id])
    backend.enqueue([make_entry(requires=("gpu",))], T0)
    assert _worker(project, backend).idle()  # it could never run that one
    assert not _worker(project, backend, tags=("gpu",)).idle()


def test_the_last_tick_comes_before_the_decision(project: Path,
                                                 backend: QueueBackend) -> None:
    """A schedule falling due as the worker finds its queue empty is queued first: the
    worker does not exit; and once it decided to, no tick queues anything more."""
    ticks: list[float] = []

    def tick(now: float) -> None:
        ticks.append(now)
        if len(ticks) == 1:
            backend.enqueue([make_entry()], now)

    worker = _worker(project, backend, on_tick=tick)
    assert not worker.idle() and len(backend.entries()) == 1
    [waiting] = backend.entries()
    backend.remove([waiting.id])
    assert worker.idle() and len(ticks) == 2
    assert worker.ticker.tick_now() is None and len(ticks) == 2  # stopped for good


SCHEDULE = {"schedules": {"nightly": {"cron": "0 3 * * *", "run": {"args": ["-S", "lr=0.3"]}}}}


@pytest.mark.parametrize("broker", ["embedded", "redis", "rabbitmq"])
def test_a_worker_runs_what_waits_and_a_due_catchup_then_exits_by_itself(
    project: Path, broker: str, request: pytest.FixtureRequest,
) -> None:
    if broker != "embedded":
        redis: RedisServer = request.getfixturevalue("redis_server")
        if broker == "redis":
            _celery_config(project, redis.url)
        else:
            rabbit: RabbitServer = request.getfixturevalue("rabbit_server")
            _celery_config(project, rabbit.url, state=redis.url)
    config = project / ".tether" / "config.yaml"
    existing = yaml.safe_load(config.read_text()) if config.exists() else {}
    write(config, yaml.safe_dump({**(existing or {}), **SCHEDULE}))
    git(project, "add", "-f", ".tether/config.yaml")
    git(project, "commit", "-q", "-m", "nightly")
    queued = enqueue(project, QueueRequest(name="queued", repeat=2))
    backend = open_queue(project)
    try:
        # The schedule fired once, long ago: the newest missed night is caught up at start.
        assert backend.claim_occurrence("nightly", T0, "gone:1", T0)
        proc = subprocess.run([sys.executable, "-m", "tether", "worker", "--exit-when-idle"],
                              cwd=project, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        entries = backend.entries()
        fired = backend.fired()["nightly"]
    finally:
        backend.close()
    assert fired.occurrence > T0 and fired.result.startswith("queued ")
    assert {e.id for e in entries} > {e.id for e in queued}
    assert [(e.name, e.state) for e in entries if e.state != DONE] == []
    assert [e.overrides for e in entries if e.message.startswith("schedule:nightly")] == [
        ("lr=0.3",)]
