"""A worker's heartbeats survive a state-store outage and resume when it is back.

A Redis outage of more than a minute used to end the heartbeat thread ("Exception
in thread tether-heartbeats ... QueueError"); the next entry the worker ran was
then declared lost although the worker was alive.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queueing.servers import REDIS_SERVER, RedisServer
from tether.errors import QueueError
from tether.queue.base import RUNNING, Entry, Heartbeat, QueueBackend
from tether.queue.embedded import EmbeddedQueue
from tether.queue.worker import Worker, WorkerOptions, _Active, next_heartbeat_delay


class FakeProc:
    """Stands for the attempt's run process: records the signals it is sent."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self) -> None:
        return None

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore:
    """A backend whose heartbeats fail while `down` (as a store that is unreachable)."""

    def __init__(self, inner: QueueBackend) -> None:
        self.inner = inner
        self.down = False
        self.failed = 0
        self.renewed_after_outage = threading.Event()

    def heartbeat(self, *args: Any) -> Heartbeat:
        if self.down:
            self.failed += 1
            if self.failed >= 5:
                self.down = False  # the store comes back after five failed renewals
            raise QueueError("cannot reach the queue's state store")
        beat = self.inner.heartbeat(*args)
        if self.failed:
            self.renewed_after_outage.set()
        return beat

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _entry() -> Entry:
    return Entry(id=uuid.uuid4().hex[:10], name="beating", baseline="a" * 40,
                 snapshot="b" * 40, snapshot_ref="refs/tether/queue/x", run_id="r" * 26)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _running_worker(tmp_path: Path, backend: Any, clock: Clock,
                    lease: float = 10.0) -> tuple[Worker, _Active]:
    entry = _entry()
    backend.enqueue([entry], clock())
    claimed = backend.claim(["default"], "w1", clock(), lease)
    assert claimed is not None
    worker = Worker(tmp_path, backend, WorkerOptions(lease=lease, clock=clock))
    worker.id = "w1"
    active = _Active(claimed, FakeProc())  # type: ignore[arg-type]
    worker._active[claimed.id] = active
    return worker, active


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedQueue]:
    queue = EmbeddedQueue(tmp_path / "queue.db", tmp_path / "logs")
    yield queue
    queue.close()


def test_a_failed_renewal_is_reported_not_raised(tmp_path: Path, embedded: EmbeddedQueue,
                                                clock: Clock) -> None:
    store = FlakyStore(embedded)
    worker, active = _running_worker(tmp_path, store, clock)
    store.down = True
    assert worker.beat_once() is False
    store.down = False
    clock.now += 5
    assert worker.beat_once() is True
    entry = embedded.get(active.entry.id)
    assert entry is not None and entry.state == RUNNING
    assert entry.lease_until == clock.now + 10  # renewed after the outage
    assert active.proc.signals == [] and not active.abandoned  # type: ignore[attr-defined]


def test_an_outage_longer_than_the_lease_fences_the_attempt(
    tmp_path: Path, embedded: EmbeddedQueue, clock: Clock
) -> None:
    store = FlakyStore(embedded)
    worker, active = _running_worker(tmp_path, store, clock)
    store.down = True
    assert worker.beat_once() is False
    clock.now += 30  # the lease ran out meanwhile and someone requeued the entry
    assert [e.id for e in embedded.requeue_expired(clock())] == [active.entry.id]
    store.down = False
    assert worker.beat_once() is True
    assert active.abandoned  # the new owner runs it; this attempt stops unrecorded
    assert active.proc.signals  # type: ignore[attr-defined]


def test_the_heartbeat_thread_outlives_an_outage(tmp_path: Path, embedded: EmbeddedQueue,
                                                 clock: Clock) -> None:
    store = FlakyStore(embedded)
    worker, _ = _running_worker(tmp_path, store, clock, lease=0.15)
    store.down = True
    beats = threading.Thread(target=worker._heartbeats, daemon=True)
    beats.start()
    try:
        assert store.renewed_after_outage.wait(30), "heartbeats did not resume"
        assert beats.is_alive() and store.failed == 5
    finally:
        worker._done.set()
        beats.join(10)
    assert not beats.is_alive()


def test_backoff_stays_below_the_lease() -> None:
    delay = 1.0
    seen = []
    for _ in range(6):
        delay = next_heartbeat_delay(delay, False, 1.0, 5.0)
        seen.append(delay)
    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert next_heartbeat_delay(5.0, True, 1.0, 5.0) == 1.0
    assert next_heartbeat_delay(0.05, False, 0.05, 0.05) == 0.05  # a 0.15 s lease


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_heartbeats_resume_after_a_real_redis_restart(tmp_path: Path, clock: Clock) -> None:
    from tether.queue.celery.state import RedisState

    server = RedisServer(tmp_path / "redis")
    server.start()
    state = RedisState(server.url, f"t{uuid.uuid4().hex[:8]}", tmp_path / "logs",
                       reconnect_window=0.5)
    try:
        worker, active = _running_worker(tmp_path, state, clock, lease=60)
        server.stop()
        assert worker.beat_once() is False
        server.start()  # the append-only file brings the entry back
        clock.now += 10
        assert worker.beat_once() is True
        entry = state.get(active.entry.id)
        assert entry is not None and entry.state == RUNNING and entry.worker == "w1"
        assert entry.lease_until == clock.now + 60
        assert not active.abandoned
    finally:
        state.close()
        server.stop()
