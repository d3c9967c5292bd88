"""The Celery backend on real, private Redis and RabbitMQ servers.

The contract suite runs on Celery+Redis and Celery+RabbitMQ (state in Redis);
then end to end with real Celery worker processes: broker redeliveries after a
shortened Redis `visibility_timeout` or RabbitMQ `consumer_timeout` never run an
experiment twice, broker restarts lose nothing, a SIGKILLed worker loses and
duplicates nothing, and a worker in a separate clone that knows only the git
remote and the broker sends its results back through git.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import git, write
from helpers import exp_refs, record_of
from queueing.chaos import ChaosReport, attempt_logs, chaos_seed, redis_rows
from queueing.contract import T0, QueueContract, make_entry
from queueing.servers import RabbitServer, RedisServer
from tether.errors import QueueError
from tether.queue.base import DONE, QueueEvent
from tether.queue.celery.app import install_sender
from tether.queue.celery.backend import CeleryQueue, open_backend
from tether.queue.celery.keys import key_prefix
from tether.queue.celery.settings import CeleryConfig, load_celery_config
from tether.queue.client import QueueRequest, enqueue


def _config(broker: str, state: str, **extra: Any) -> CeleryConfig:
    return CeleryConfig(broker=broker, state=state, namespace=f"t{uuid.uuid4().hex[:10]}",
                        git_remote=None, **extra)


# -- the contract ---------------------------------------------------------------


class TestCeleryRedisContract(QueueContract):
    """As a client sees it: wake-ups are left to workers (a note in the state store)."""

    @pytest.fixture
    def backend(self, tmp_path: Path, events: list[QueueEvent],
                redis_server: RedisServer) -> Iterator[CeleryQueue]:
        queue = CeleryQueue(_config(redis_server.url, redis_server.url), tmp_path,
                            tmp_path / "logs", events.append)
        yield queue
        queue.close()


class TestCeleryRabbitContract(QueueContract):
    """As a worker sees it: wake-ups are sent to RabbitMQ at once (not left to a sweeper)."""

    @pytest.fixture
    def backend(self, tmp_path: Path, events: list[QueueEvent], redis_server: RedisServer,
                rabbit_server: RabbitServer) -> Iterator[CeleryQueue]:
        queue = CeleryQueue(_config(rabbit_server.url, redis_server.url), tmp_path,
                            tmp_path / "logs", events.append)
        app = install_sender(queue)
        yield queue
        queue.close()
        app.close()


# -- config ---------------------------------------------------------------------


def _set_queue_config(root: Path, **section: Any) -> None:
    write(root / ".tether" / "config.yaml",
          yaml.safe_dump({"queue": {"backend": "celery", **section}}))


def test_an_amqp_broker_without_a_state_store_is_a_clear_error(repo: Path) -> None:
    _set_queue_config(repo, broker="amqp://guest@127.0.0.1:5672//")
    with pytest.raises(QueueError, match=r"queue\.state"):
        load_celery_config(repo)
    _set_queue_config(repo)
    with pytest.raises(QueueError, match=r"queue\.broker"):
        load_celery_config(repo)


def test_config_defaults_agree_across_clones(repo: Path, tmp_path: Path) -> None:
    _set_queue_config(repo, broker="redis://127.0.0.1:1/0")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    _set_queue_config(clone, broker="redis://127.0.0.1:1/0")
    mine, theirs = load_celery_config(repo), load_celery_config(clone)
    assert mine.state == mine.broker and mine.namespace == theirs.namespace
    assert mine.git_remote is None and theirs.git_remote == "origin"


@pytest.mark.parametrize("module", ["celery.backend", "celery.app"])
def test_importing_without_celery_names_the_extra(module: str, tmp_path: Path) -> None:
    blocker = write(tmp_path / "block" / "sitecustomize.py",
                    "import sys\nsys.modules['celery'] = None\n")
    proc = subprocess.run(
        [sys.executable, "-c", f"import tether.queue.{module}"], capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(blocker.parent)},
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: the Celery queue backend needs Celery and redis-py: install tether[celery]")


# -- end to end -------------------------------------------------------------------


class CeleryProject:
    """A project using the Celery backend, its worker processes and their logs."""

    def __init__(self, root: Path, logs: Path, workers: list[subprocess.Popen[bytes]]) -> None:
        self.root = root
        self.logs = logs
        self.workers = workers
        self.counter = logs / "runs.count"  # train.py counts its runs here

    def enqueue(self, count: int, name: str) -> list[str]:
        """Queue as `tether run --queue` does: no Celery, no redis-py (`celery.client`)."""
        entries = enqueue(self.root, QueueRequest(name=name, repeat=count))
        return [entry.id for entry in entries]

    def worker(self, *args: str, root: Path | None = None, env: dict[str, str] | None = None,
               count_runs: bool = True) -> subprocess.Popen[bytes]:
        """A worker process; with `count_runs` (one run at a time only) train.py counts runs."""
        counting = {"TRAIN_FAIL_TIMES": f"{self.counter}:0"} if count_runs else {}
        log = self.logs / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tether.queue.celery.app", "--root",
                 str(root or self.root), *args],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **counting, **(env or {})},
            )
        self.workers.append(proc)
        return proc

    def worker_logs(self) -> str:
        return "".join(path.read_text(errors="replace")
                       for path in sorted(self.logs.glob("worker-*.log")))

    def states(self, ids: list[str]) -> list[str]:
        backend = open_backend(self.root)
        try:
            return [entry.state if (entry := backend.get(i)) else "missing" for i in ids]
        finally:
            backend.close()

    def problems(self, ids: list[str]) -> list[tuple[str, str, int, str | None]]:
        backend = open_backend(self.root)
        try:
            found = [backend.get(i) for i in ids]
        finally:
            backend.close()
        return [(e.name, e.state, e.attempt, e.error) for e in found if e and e.state != DONE]

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout}s; worker logs:\n"
                                     f"{self.worker_logs()[-6000:]}")
            time.sleep(0.1)

    def wait_done(self, ids: list[str], timeout: float = 90) -> None:
        self.wait(lambda: set(self.states(ids)) == {DONE}, timeout, "all entries done")

    def runs(self) -> int:
        return int(self.counter.read_text()) if self.counter.exists() else 0

    def recorded(self, prefix: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
        where = root or self.root
        return {ref.rsplit("/", 1)[1]: record_of(where, ref) for ref in exp_refs(where)
                if ref.startswith("refs/tether/exps/")
                and (f"/{prefix}-" in ref or ref.endswith(f"/{prefix}"))}


@pytest.fixture
def worker_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _celery_project(project: Path, tmp_path: Path, workers: list[subprocess.Popen[bytes]],
                    **section: Any) -> CeleryProject:
    _set_queue_config(project, namespace=f"t{uuid.uuid4().hex[:10]}", **section)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "celery queue")
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    return CeleryProject(project, logs, workers)


def test_redis_visibility_timeout_redelivery_never_runs_twice(
    project: Path, tmp_path: Path, redis_server: RedisServer, worker_procs: list[Any],
) -> None:
    fast_redelivery = {"visibility_timeout": 2, "unacked_restore_interval": 1,
                       "unacked_restore_throttle": 1}
    cp = _celery_project(project, tmp_path, worker_procs, broker=redis_server.url,
                         broker_options=fast_redelivery)
    ids = cp.enqueue(1, "slow")
    for _ in range(2):
        cp.worker("--lease", "3", env={"TRAIN_SLEEP": "6"})
    cp.wait_done(ids)
    assert cp.runs() == 1
    records = cp.recorded("slow")
    assert list(records) == ["slow"] and records["slow"]["status"] == "success"
    # The broker did redeliver the wake-up while the run went on; start() refused it.
    assert re.search(r"event=wakeup_ignored .*state=running", cp.worker_logs())


def test_rabbitmq_consumer_timeout_kill_never_runs_twice(
    project: Path, tmp_path: Path, redis_server: RedisServer, rabbit_server: RabbitServer,
    worker_procs: list[Any],
) -> None:
    # The private node runs with consumer_timeout = 3000 ms, checked every second.
    cp = _celery_project(project, tmp_path, worker_procs, broker=rabbit_server.url,
                         state=redis_server.url)
    ids = cp.enqueue(1, "long")
    for _ in range(2):
        cp.worker("--lease", "3", env={"TRAIN_SLEEP": "8"})
    cp.wait_done(ids)
    assert cp.runs() == 1
    assert list(cp.recorded("long")) == ["long"]
    logs = cp.worker_logs()
    assert (re.search(r"event=wakeup_ignored .*state=running", logs)
            or "PRECONDITION_FAILED" in logs), logs[-4000:]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_broker_restart_loses_nothing(
    broker: str, project: Path, tmp_path: Path, redis_server: RedisServer,
    rabbit_server: RabbitServer, worker_procs: list[Any],
) -> None:
    if broker == "redis":
        server: RedisServer | RabbitServer = RedisServer(tmp_path / "own-redis")
        server.start()
        section = {"broker": server.url}
    else:
        server = rabbit_server
        section = {"broker": rabbit_server.url, "state": redis_server.url}
    try:
        cp = _celery_project(project, tmp_path, worker_procs, **section)
        ids = cp.enqueue(4, "restart")
        cp.worker("--lease", "5", env={"TRAIN_SLEEP": "2"})
        cp.wait(lambda: "running" in cp.states(ids), 60, "a run started")
        server.restart()  # one entry running, three queued
        cp.wait_done(ids, timeout=150)
        assert cp.runs() == 4
        assert sorted(cp.recorded("restart")) == [f"restart-{i}" for i in range(1, 5)]
    finally:
        for proc in worker_procs:
            proc.kill()
        if broker == "redis":
            server.stop()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_chaos_a_killed_worker_loses_nothing_and_duplicates_nothing(
    broker: str, project: Path, tmp_path: Path, redis_server: RedisServer,
    rabbit_server: RabbitServer, worker_procs: list[Any],
) -> None:
    seed = chaos_seed()
    rng = random.Random(seed)
    report = ChaosReport(tmp_path / "chaos-report.txt", seed)
    section = ({"broker": redis_server.url} if broker == "redis"
               else {"broker": rabbit_server.url, "state": redis_server.url})
    cp = _celery_project(project, tmp_path, worker_procs, **section)
    namespace = load_celery_config(project).namespace
    queued: list[str] = []

    def collect() -> dict[str, str]:
        for proc in worker_procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        backend = open_backend(project)
        try:
            entries = [backend.get(i) for i in queued]
        finally:
            backend.close()
        return {
            "entries": "\n".join(
                f"{e.id} {e.name} {e.state} attempt={e.attempt} lost={e.lost} "
                f"worker={e.worker} lease_until={e.lease_until} status={e.status} "
                f"error={e.error}" if e else "missing" for e in entries),
            "state store (Redis keys)": redis_rows(redis_server.url, key_prefix(namespace)),
            "experiment refs": "\n".join(sorted(exp_refs(project))),
            "worker logs": cp.worker_logs(),
            "attempt logs": attempt_logs(project / ".tether" / "queue" / "logs"),
        }

    env = {"TRAIN_SLEEP": "0.1"}
    with report.on_failure(collect):
        for round_number in range(1, 4):
            prefix = f"round{round_number}"
            ids = cp.enqueue(20, prefix)
            queued += ids
            # A short lease (4 s) makes the dead worker's entries come back quickly, yet is
            # long enough that a survivor slowed by a loaded 2-core machine keeps its own.
            victim = cp.worker("-j", "2", "--lease", "4", env=env, count_runs=False)
            survivor = cp.worker("-j", "2", "--lease", "4", "--exit-when-idle", env=env,
                                 count_runs=False)
            report.note(f"{prefix}: queued 20; victim worker-{len(cp.workers) - 2}, "
                        f"survivor worker-{len(cp.workers) - 1}")

            def started(ids: list[str] = ids) -> bool:
                return "running" in cp.states(ids)

            cp.wait(started, 60, "a run started")
            pause = rng.uniform(0.0, 2.0)
            time.sleep(pause)
            victim.send_signal(signal.SIGKILL)
            victim.wait(30)
            report.note(f"{prefix}: victim SIGKILLed {pause:.2f}s after the first run started")
            assert survivor.wait(120) == 0, cp.worker_logs()[-6000:]
            assert set(cp.states(ids)) == {DONE}, (cp.problems(ids), cp.worker_logs()[-4000:])
            records = cp.recorded(prefix)
            assert sorted(records) == sorted(f"{prefix}-{i}" for i in range(1, 21))
            backend = open_backend(project)
            try:
                run_ids = {e.name: e.run_id for e in (backend.get(i) for i in ids) if e}
            finally:
                backend.close()
            assert all(record["id"] == run_ids[name] for name, record in records.items())
            assert all(record["status"] == "success" for record in records.values())


def test_worker_in_a_separate_clone_sends_results_back_through_git(
    project: Path, tmp_path: Path, redis_server: RedisServer, worker_procs: list[Any],
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    cp = _celery_project(project, tmp_path, worker_procs, broker=redis_server.url)
    git(project, "push", "-q", "origin", "main")
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(elsewhere))  # origin + config

    write(project / "params.yaml", "lr: 0.25\nepochs: 2\n")  # uncommitted: in the snapshot
    ids = cp.enqueue(1, "remote")
    assert "refs/tether/queue/" in git(origin, "for-each-ref", "refs/tether/queue/")
    proc = cp.worker("--exit-when-idle", root=elsewhere)
    assert proc.wait(120) == 0, cp.worker_logs()
    assert cp.states(ids) == [DONE]
    assert cp.recorded("remote") == {}  # nothing here yet: it was recorded elsewhere
    git(project, "fetch", "-q", "origin", "refs/tether/*:refs/tether/*")
    records = cp.recorded("remote")
    assert list(records) == ["remote"]
    assert records["remote"]["params"]["params.yaml"]["lr"] == 0.25
    assert records["remote"]["metrics"] == {"acc": 0.5}
    # The log was shipped through the state store: readable here, where it did not run.
    backend = open_backend(project)
    try:
        entry = backend.get(ids[0])
        assert entry is not None
        assert not backend.attempt_dir(entry.id, entry.attempt).exists()
        assert b"training" in backend.read_log(entry.id, entry.attempt).data
    finally:
        backend.close()


def test_entries_queued_with_no_worker_or_an_idle_one_all_run_once(
    project: Path, tmp_path: Path, redis_server: RedisServer, worker_procs: list[Any],
) -> None:
    cp = _celery_project(project, tmp_path, worker_procs, broker=redis_server.url)
    before = cp.enqueue(3, "early")  # no worker yet: nothing was sent to Celery
    backend = open_backend(project)
    try:
        assert backend.dispatch_info(before) == [(0.0, 0)] * 3
    finally:
        backend.close()
    worker = cp.worker("--lease", "30")
    cp.wait_done(before)  # its sweeper sent the wake-ups when it started
    later = cp.enqueue(2, "later")  # it waits on the state store's note, then sends them
    cp.wait_done(later)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, cp.worker_logs()[-4000:]
    # later-1 and later-2 have the inputs and seeds (0, 1) of early-1 and early-2: the
    # repository's run-cache restores them, so only the three early seeds train.
    assert cp.runs() == 3
    assert sorted(cp.recorded("early")) == ["early-1", "early-2", "early-3"]
    assert sorted(cp.recorded("later")) == ["later-1", "later-2"]


def test_a_second_sigterm_requeues_the_running_entry_at_once(
    project: Path, tmp_path: Path, redis_server: RedisServer, worker_procs: list[Any],
) -> None:
    """`--on-term finish` (the default) lets a run end on SIGTERM; a second signal
    abandons it back to the queue, unrecorded, as the embedded worker does."""
    cp = _celery_project(project, tmp_path, worker_procs, broker=redis_server.url)
    ids = cp.enqueue(1, "drained")
    worker = cp.worker("--lease", "30", env={"TRAIN_SLEEP": "120"})
    cp.wait(lambda: "running" in cp.states(ids), 60, "the run started")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the first signal is handled on its own (not a timing assertion)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, cp.worker_logs()[-4000:]
    assert cp.states(ids) == ["queued"]
    assert cp.recorded("drained") == {}
    assert "requeued: the worker was stopped" in cp.worker_logs()


def test_a_wakeup_held_by_a_dead_worker_is_sent_again_by_an_idle_one(
    tmp_path: Path, redis_server: RedisServer,
) -> None:
    """A worker SIGKILLed after Celery delivered it a wake-up, before it started the entry:
    Redis gives the message back only after its visibility timeout (an hour). A worker with
    a free slot re-sends wake-ups that have been out `stale_after` (chaos round that
    stranded an entry: seed 488909, 2026-11-30)."""
    from queueing.contract import T0, make_entry

    queue = CeleryQueue(_config(redis_server.url, redis_server.url), tmp_path,
                        tmp_path / "logs")
    sent: list[tuple[str, float]] = []
    queue.sender = lambda entries, now: sent.extend((e.id, now) for e in entries)
    try:
        entry = make_entry()
        queue.enqueue([entry], T0)
        assert [e.id for e in queue.dispatch_waiting(T0)] == [entry.id]  # first wake-up
        # Its message is now held by a worker that dies; nothing else happens for 30 s.
        assert queue.dispatch_waiting(T0 + 30) == []  # redispatch_after (900 s) not reached
        assert queue.dispatch_waiting(T0 + 3, stale_after=5) == []  # not stale yet
        assert [e.id for e in queue.dispatch_waiting(T0 + 6, stale_after=5)] == [entry.id]
        assert queue.dispatch_waiting(T0 + 12, stale_after=5) == []  # the wait doubles: 10 s
        assert len(queue.dispatch_waiting(T0 + 17, stale_after=5)) == 1
        assert [at for _, at in sent] == [T0, T0 + 6, T0 + 17]
        # Once a worker started it, no idle worker re-sends anything for it.
        assert queue.start(entry.id, "w1", T0 + 18, 60) is not None
        assert queue.dispatch_waiting(T0 + 100, stale_after=5) == []
    finally:
        queue.close()


def test_stats_index_is_rebuilt_for_entries_queued_before_it(
    tmp_path: Path, redis_server: RedisServer,
) -> None:
    queue = CeleryQueue(_config(redis_server.url, redis_server.url), tmp_path, tmp_path / "logs")
    try:
        queue.enqueue([make_entry(), make_entry(), make_entry(queue="gpu")], T0)
        assert queue.claim(["gpu"], "w", T0, 60) is not None
        expected = queue.stats(T0 + 1)
        assert (expected.waiting, expected.running) == ({"default": 2}, {"gpu": 1})
        # What a state store written by an older tether holds: no per-queue index.
        queue.redis.delete(*queue.redis.keys(f"{queue.prefix}q*"))
        assert queue.stats(T0 + 1) == expected
    finally:
        queue.close()
