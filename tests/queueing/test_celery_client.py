"""The client side of the Celery backend, on a real, private redis-server.

A client never sends Celery messages: `tether run --queue` writes the entries and
a note into the Redis state store with redis-py (neither Celery nor PyYAML
imported), and a worker's sweeper, woken by
the note, sends the wake-ups. Time is passed in, so nothing here waits for a
re-dispatch.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from conftest import git, write
from queueing.conftest import tether
from queueing.contract import T0, make_entry
from queueing.servers import RedisServer, free_port
from tether.errors import QueueError
from tether.queue.base import FAILED, QUEUED, RUNNING, Entry, Outcome
from tether.queue.celery.backend import CeleryQueue, open_backend
from tether.queue.celery.client import CeleryEnqueuer
from tether.queue.celery.settings import CeleryConfig
from tether.queue.celery.state import RedisState
from tether.queue.client import backend_name


def _config(url: str, **extra: object) -> CeleryConfig:
    return CeleryConfig(broker=url, state=url, namespace=f"t{uuid.uuid4().hex[:10]}",
                        git_remote=None, **extra)  # type: ignore[arg-type]


def test_enqueue_imports_neither_celery_nor_yaml(
    project: Path, redis_server: RedisServer,
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    write(project / ".tether" / "config.yaml", yaml.safe_dump(
        {"queue": {"backend": "celery", "broker": redis_server.url, "namespace": namespace}}))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "celery queue")
    tether(project, "run", "--queue", "-S", "lr=0.2")  # reads the config with PyYAML, once
    code = (
        "import sys\n"
        "from tether.cli.main import main\n"
        "code = main(['run', '--queue', '-S', 'lr=0.3'])\n"
        "heavy = {'celery', 'kombu', 'yaml'}\n"
        "print('loaded', code, sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "loaded 0 []", proc.stderr
    backend = open_backend(project)
    try:
        entries = backend.entries()
        assert [e.overrides for e in entries] == [("lr=0.2",), ("lr=0.3",)]
        assert backend.waiting_entries() == entries
        assert backend.dispatch_info([e.id for e in entries]) == [(0.0, 0), (0.0, 0)]
        assert backend.wait_for_wakeup(0.1)  # the note a worker's sweeper waits for
    finally:
        backend.close()


def test_an_enqueue_repeated_after_a_lost_reply_leaves_started_entries_alone(
    tmp_path: Path, redis_server: RedisServer,
) -> None:
    config = _config(redis_server.url)
    client = CeleryEnqueuer(config, tmp_path)
    state = RedisState(config.state, config.namespace, tmp_path / "logs")
    try:
        entries = [make_entry(), make_entry()]
        client.enqueue(entries, T0)
        assert client.reserved_names(entries[0].baseline) == {e.name for e in entries}
        assert client.reserved_names("0" * 40) == set()
        assert state.start(entries[0].id, "w", T0, 60) is not None
        client.enqueue(entries, T0)  # what a retry does when the first reply was lost
        assert [(e.state, e.attempt) for e in state.entries()] == [(RUNNING, 1), (QUEUED, 0)]
    finally:
        client.close()
        state.close()


def test_workers_send_the_wake_ups_clients_leave(tmp_path: Path, redis_server: RedisServer,
                                                 ) -> None:
    config = _config(redis_server.url, redispatch_after=100.0)
    client = CeleryQueue(config, tmp_path, tmp_path / "logs")
    worker = CeleryQueue(config, tmp_path, tmp_path / "logs")
    sent: list[str] = []

    def send(entries: Sequence[Entry], now: float) -> None:
        sent.extend(entry.id for entry in entries)

    worker.sender = send
    try:
        first, second = make_entry(), make_entry()
        client.enqueue([first, second], T0)
        assert worker.wait_for_wakeup(5) and not worker.wait_for_wakeup(0.1)
        # Never woken for: at once; then again only when stale, waiting twice as long.
        assert [e.id for e in worker.dispatch_waiting(T0)] == [first.id, second.id]
        assert worker.dispatch_waiting(T0 + 99) == []
        assert [e.id for e in worker.dispatch_waiting(T0 + 101)] == [first.id, second.id]
        assert worker.dispatch_waiting(T0 + 299) == []
        assert sent == [first.id, second.id] * 2

        # A requeue seen by a client (`tether queue status`) is left to the workers too.
        sent.clear()
        assert worker.claim(["default"], "w", T0 + 102, 10) is not None
        assert [e.id for e in client.requeue_expired(T0 + 120)] == [first.id]
        assert sent == []
        assert worker.wait_for_wakeup(5)
        assert [e.id for e in worker.dispatch_waiting(T0 + 121)] == [first.id]

        # So is `tether queue retry`.
        assert worker.claim(["default"], "w", T0 + 122, 10) is not None
        assert worker.finish(first.id, 2, "w", Outcome(FAILED), T0 + 123)
        client.retry(first.id, name="again", run_id="r2", now=T0 + 124)
        assert worker.wait_for_wakeup(5)
        assert [e.id for e in worker.dispatch_waiting(T0 + 125)] == [first.id]

        # A worker's own requeue sends the wake-up at once, leaving no note.
        sent.clear()
        assert worker.claim(["default"], "w", T0 + 126, 10) is not None
        worker.requeue_expired(T0 + 140)
        assert sent == [first.id] and not worker.wait_for_wakeup(0.1)
    finally:
        client.close()
        worker.close()
    with pytest.raises(RuntimeError, match="workers only"):
        client.dispatch([first], T0)


def test_an_unreachable_state_store_is_a_clear_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    enqueuer = CeleryEnqueuer(_config(url), tmp_path, reconnect_window=0)
    try:
        with pytest.raises(QueueError) as info:
            enqueuer.reserved_names("b" * 40)
    finally:
        enqueuer.close()
    assert info.value.message.startswith(f"the queue state store at {url} is unreachable: ")
    assert "check that Redis is running" in str(info.value.hint)


def test_a_password_a_database_and_a_unix_socket(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", password="s3cret", unix_socket=True)
    server.start()
    try:
        tcp = f"redis://:s3cret@127.0.0.1:{server.port}/2"
        for url in (tcp, f"redis://default:s3cret@127.0.0.1:{server.port}/2",
                    f"unix://:s3cret@{server.socket}?db=2"):
            config = _config(url)
            entry = make_entry()
            enqueuer = CeleryEnqueuer(config, tmp_path)
            try:
                enqueuer.enqueue([entry], T0)
                assert enqueuer.reserved_names(entry.baseline) == {entry.name}
            finally:
                enqueuer.close()
            full = RedisState(tcp, config.namespace, tmp_path / "logs")  # redis-py, database 2
            try:
                found = full.get(entry.id)
                assert found is not None and found.overrides == entry.overrides
            finally:
                full.close()
        port = server.port
        for url, refusal in ((f"redis://:wrong@127.0.0.1:{port}/2", "invalid username-password"),
                             (f"redis://127.0.0.1:{port}/2", "Authentication required")):
            enqueuer = CeleryEnqueuer(_config(url), tmp_path)
            try:
                with pytest.raises(QueueError, match=f"refused a command: {refusal}") as info:
                    enqueuer.reserved_names("b" * 40)
                assert ":wrong@" not in info.value.message
            finally:
                enqueuer.close()
    finally:
        server.stop()


def test_the_queue_config_is_read_again_when_it_changes(repo: Path) -> None:
    config, local = repo / ".tether" / "config.yaml", repo / ".tether" / "config.local.yaml"
    assert backend_name(repo) == "embedded"
    write(config, "queue:\n  backend: celery\n")
    assert backend_name(repo) == "celery"
    write(local, "queue: {backend: embedded}\n")
    assert backend_name(repo) == "embedded"
    local.unlink()
    assert backend_name(repo) == "celery"
    cache = repo / ".tether" / "tmp" / "queue-config.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    write(config, "queue:\n  backend: nope\n")
    with pytest.raises(Exception, match="not one of embedded, celery"):
        backend_name(repo)
