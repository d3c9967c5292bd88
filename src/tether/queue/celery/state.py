"""Queue state in Redis, shared by every client and worker that knows its URL.

`RedisState` stores entries as hashes and keeps sorted sets for the waiting
entries, the running entries' leases and the enqueue order; each transition is
one Lua script (see `tether.queue.celery.lua`), so two workers can never take the
same entry, and a worker that lost its entry cannot overwrite the new owner's
report. It is the storage half of the Celery backend (which adds wake-ups), and
a complete `QueueBackend` on its own for pull workers. The key layout, and the
writes of an enqueue (shared with the enqueue path's light client), are in
`tether.queue.celery.keys`.

Redis being restarted must not kill a worker in the middle of a run: every call
retries on connection errors for `reconnect_window` seconds. Calls whose reply
may have been lost are safe to repeat (finish carries a token; a repeated claim
at worst leaves an entry to the lease sweep).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from tether.errors import QueueError
from tether.queue.base import (
    CANCELLED,
    FAILED,
    MAX_LOST,
    QUEUED,
    Entry,
    EventHook,
    Firing,
    Heartbeat,
    LogChunk,
    Outcome,
    QueueEvent,
    QueueStats,
    WorkerInfo,
    read_local_log,
    unknown_entry,
)
from tether.queue.celery import keys, lua
from tether.queue.celery.keys import entry_key, number
from tether.structs import replace

T = TypeVar("T")

# The state store keeps at most this much of one attempt's output (the record has it all).
LOG_CAP = 8 * 1024 * 1024
_INT_FIELDS = ("priority", "attempt", "lost")
_FLOAT_FIELDS = ("lease_until", "heartbeat_at", "created_at", "started_at", "ended_at",
                 "not_before")
_TEXT_FIELDS = ("id", "queue", "state", "name", "baseline", "snapshot", "snapshot_ref", "run_id",
                "worker", "status", "result_ref", "error")
_TRANSIENT = keys.transient_errors()


def entry_from_hash(raw: dict[bytes, bytes]) -> Entry:
    """An `Entry` from the hash Redis holds for it."""
    data = {key.decode(): value.decode() for key, value in raw.items()}
    values: dict[str, Any] = {name: data[name] for name in _TEXT_FIELDS if name in data}
    for name in _INT_FIELDS:
        if name in data:
            values[name] = int(data[name])
    for name in _FLOAT_FIELDS:
        if name in data:
            values[name] = float(data[name])
    values["stage_failures"] = json.loads(data.get("stage_failures", "{}"))
    values["kill_requested"] = data.get("kill_requested") == "1"
    values["requires"] = tuple(tag for tag in data.get("requires", "").split(",") if tag)
    return Entry(**values).with_payload(json.loads(data.get("payload", "{}")))


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisState:
    """A `QueueBackend` whose entries live in Redis under `tether:<namespace>:`."""

    def __init__(
        self, url: str, namespace: str, logs_root: Path, on_event: EventHook | None = None,
        *, reconnect_window: float = 60.0,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.prefix = keys.key_prefix(namespace)
        self.logs_root = logs_root
        self.on_event = on_event
        self.reconnect_window = reconnect_window
        self.redis = keys.connect(url)
        self._scripts = {
            name: self.redis.register_script(getattr(lua, name))
            for name in ("CLAIM", "START", "HEARTBEAT", "FINISH", "REQUEUE_EXPIRED",
                         "REQUEST_KILL", "REMOVE", "RETRY", "APPEND_LOG", "CLAIM_OCCURRENCE",
                         "NOTE_FIRED", "STATS")
        }
        self._shipping: dict[tuple[str, int], int] = {}  # attempt -> bytes shipped
        self._ship_lock = threading.Lock()
        self._ship_stop = threading.Event()
        self._shipper: threading.Thread | None = None

    # -- plumbing ---------------------------------------------------------

    def _retrying(self, call: Callable[[], T]) -> T:
        return keys.retrying(call, self.url, self.reconnect_window, _TRANSIENT)

    def _script(self, name: str, *args: str | int | float | bytes) -> Any:
        script = self._scripts[name]
        return self._retrying(lambda: script(args=[self.prefix, *args]))

    def _key(self, entry_id: str) -> str:
        return entry_key(self.prefix, entry_id)

    def _emit(self, kind: str, entries: Iterable[Entry], detail: str = "") -> None:
        if self.on_event is not None:
            for entry in entries:
                self.on_event(QueueEvent(kind, entry, detail))

    def _fetch(self, entry_id: str) -> Entry | None:
        raw = cast(dict[bytes, bytes],
                   self._retrying(lambda: self.redis.hgetall(self._key(entry_id))))
        return entry_from_hash(raw) if raw else None

    def _fetch_many(self, ids: Sequence[str]) -> list[Entry]:
        def load() -> list[dict[bytes, bytes]]:
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.hgetall(self._key(entry_id))
            return cast(list[dict[bytes, bytes]], pipe.execute())

        return [entry_from_hash(raw) for raw in self._retrying(load) if raw]

    def _ids(self) -> list[str]:
        ids = cast(list[bytes],
                   self._retrying(lambda: self.redis.zrange(f"{self.prefix}all", 0, -1)))
        return [value.decode() for value in ids]

    # -- the interface ----------------------------------------------------

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        self._retrying(lambda: keys.write_entries(self.redis, self.prefix, entries, now))
        self._emit("queued", [replace(e, state=QUEUED) for e in entries])

    def get(self, entry_id: str) -> Entry | None:
        exact = self._fetch(entry_id)
        if exact is not None:
            return exact
        matches = [i for i in self._ids() if i.startswith(entry_id)] if entry_id else []
        if len(matches) > 1:
            raise QueueError(f"queue entry id {entry_id!r} is ambiguous",
                             hint="give more characters of the id (see `tether queue status`)")
        return self._fetch(matches[0]) if matches else None

    def entries(
        self, states: Iterable[str] | None = None, queues: Iterable[str] | None = None
    ) -> list[Entry]:
        found = self._fetch_many(self._ids())
        if states is not None:
            wanted_states = set(states)
            found = [e for e in found if e.state in wanted_states]
        if queues is not None:
            wanted_queues = set(queues)
            found = [e for e in found if e.queue in wanted_queues]
        return found

    def reserved_names(self, baseline: str) -> set[str]:
        return self._retrying(
            lambda: keys.reserved_names(self.redis, self.prefix, baseline))

    def claim(self, queues: Sequence[str], worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        raw = self._script("CLAIM", worker, number(now), number(now + lease),
                           json.dumps(list(tags)), *queues)
        return self._started(raw, worker)

    def start(self, entry_id: str, worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        raw = self._script("START", entry_id, worker, number(now), number(now + lease),
                           json.dumps(list(tags)))
        return self._started(raw, worker)

    def _started(self, raw: list[bytes] | None, worker: str) -> Entry | None:
        if not raw:
            return None
        entry = entry_from_hash(_pairs(raw))
        self.ship_log(entry.id, entry.attempt)
        self._emit("started", [entry], worker)
        return entry

    def heartbeat(
        self, entry_id: str, attempt: int, worker: str, now: float, lease: float
    ) -> Heartbeat:
        owned, kill = self._script("HEARTBEAT", entry_id, str(attempt), worker, number(now),
                                   number(now + lease))
        return Heartbeat(owned=bool(owned), kill_requested=bool(kill))

    def finish(
        self, entry_id: str, attempt: int, worker: str, outcome: Outcome, now: float
    ) -> bool:
        self.stop_shipping(entry_id, attempt)
        values: dict[str, str | None] = {
            "state": outcome.state, "status": outcome.status, "result_ref": outcome.result_ref,
            "error": outcome.error, "ended_at": number(now), "lease_until": None,
            "not_before": number(outcome.not_before), "kill_requested": "0",
        }
        if outcome.stage_failures is not None:
            values["stage_failures"] = json.dumps(outcome.stage_failures)
        kept = {name: value for name, value in values.items() if value is not None}
        gone = [name for name, value in values.items() if value is None]
        token = secrets.token_hex(8)
        done = self._script("FINISH", entry_id, str(attempt), worker, token, json.dumps(kept),
                            json.dumps(gone))
        if not done:
            return False
        entry = self._fetch(entry_id)
        if entry is not None:
            self._emit(outcome.state, [entry], outcome.error or "")
        return True

    def requeue_expired(self, now: float) -> list[Entry]:
        ids = [i.decode() for i in self._script("REQUEUE_EXPIRED", number(now), str(MAX_LOST))]
        changed = self._fetch_many(ids)
        for entry in changed:
            self._emit("requeued" if entry.state == QUEUED else FAILED, [entry], entry.error or "")
        return changed

    def request_kill(self, entry_id: str, now: float) -> Entry:
        entry = self._require(entry_id)
        result = self._script("REQUEST_KILL", entry.id, number(now)).decode()
        if result == "missing":
            raise unknown_entry(entry_id)
        if result not in ("cancel", "kill"):
            raise QueueError(f"entry {entry.id} is already {result}")
        entry = self._require(entry.id)
        if result == "cancel":
            self._emit(CANCELLED, [entry], "killed while waiting")
        return entry

    def remove(self, entry_ids: Iterable[str]) -> list[Entry]:
        entries = [self._require(entry_id) for entry_id in entry_ids]
        if not entries:
            return []
        result = [part.decode() for part in self._script("REMOVE", *[e.id for e in entries])]
        if result[0] == "running":
            raise QueueError(f"entry {result[1]} is running",
                             hint=f"stop it first: tether queue kill {result[1]}")
        if result[0] == "missing":
            raise unknown_entry(result[1])
        return entries

    def retry(self, entry_id: str, *, name: str, run_id: str, now: float) -> Entry:
        entry = self._require(entry_id)
        result = self._script("RETRY", entry.id, name, run_id, number(now)).decode()
        if result != "ok":
            raise QueueError(f"entry {entry.id} is {result}; only failed or cancelled "
                             "entries can be retried")
        entry = self._require(entry.id)
        self._emit(QUEUED, [entry], "retry")
        return entry

    def _require(self, entry_id: str) -> Entry:
        entry = self.get(entry_id)
        if entry is None:
            raise unknown_entry(entry_id)
        return entry

    def claim_occurrence(self, schedule: str, occurrence: float, worker: str,
                         now: float) -> bool:
        return bool(self._script("CLAIM_OCCURRENCE", schedule, number(occurrence), worker,
                                 number(now)))

    def note_fired(self, schedule: str, occurrence: float, result: str) -> None:
        self._script("NOTE_FIRED", schedule, number(occurrence), result)

    def fired(self) -> dict[str, Firing]:
        return self._retrying(lambda: keys.read_firings(self.redis, self.prefix))

    def stats(self, now: float) -> QueueStats:
        return keys.stats_from_json(self._script("STATS", number(now)))

    def announce_worker(self, worker: str, queues: Sequence[str], now: float,
                        lease: float, tags: Sequence[str] = ()) -> None:
        self._retrying(lambda: keys.announce_worker(self.redis, self.prefix, worker, queues,
                                                    now + lease, now, tags))

    def live_workers(self, now: float) -> list[WorkerInfo]:
        return self._retrying(lambda: keys.live_workers(self.redis, self.prefix, now))

    def retire_worker(self, worker: str) -> None:
        self._retrying(lambda: keys.retire_worker(self.redis, self.prefix, worker))

    def attempt_dir(self, entry_id: str, attempt: int) -> Path:
        return self.logs_root / entry_id / str(attempt)

    def read_log(self, entry_id: str, attempt: int, offset: int = 0) -> LogChunk:
        """From the local file when this machine ran the attempt, else from the store."""
        local = read_local_log(self.attempt_dir(entry_id, attempt) / "output.log", offset)
        if local is not None:
            return local
        key = f"{self.prefix}log:{entry_id}:{attempt}"

        def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.getrange(key, offset, -1)
            pipe.get(f"{self.prefix}logat:{entry_id}:{attempt}")
            return pipe.execute()

        stored, at = self._retrying(read)
        if at is None:
            return LogChunk(b"", offset, None)
        return LogChunk(stored, offset + len(stored), float(at))

    def close(self) -> None:
        self._ship_stop.set()
        if self._shipper is not None:
            self._shipper.join(5)
        self.redis.close()

    # -- log shipping -------------------------------------------------------

    def ship_log(self, entry_id: str, attempt: int) -> None:
        """Copy this attempt's local log into the store as it grows (clients anywhere read it)."""
        with self._ship_lock:
            self._shipping.setdefault((entry_id, attempt), 0)
            if self._shipper is None:
                self._shipper = threading.Thread(target=self._ship_loop, daemon=True,
                                                 name="tether-log-shipper")
                self._shipper.start()

    def stop_shipping(self, entry_id: str, attempt: int) -> None:
        """Ship what is left of the attempt's log and stop following it."""
        with self._ship_lock:
            if (entry_id, attempt) in self._shipping:
                self._ship_one(entry_id, attempt)
                del self._shipping[(entry_id, attempt)]

    def _ship_loop(self) -> None:
        while not self._ship_stop.wait(0.5):
            with self._ship_lock:
                for entry_id, attempt in list(self._shipping):
                    # The store may be away for a moment: the next round ships the rest.
                    with contextlib.suppress(QueueError):
                        self._ship_one(entry_id, attempt)

    def _ship_one(self, entry_id: str, attempt: int) -> None:
        shipped = self._shipping[(entry_id, attempt)]
        path = self.attempt_dir(entry_id, attempt) / "output.log"
        try:
            with open(path, "rb") as handle:
                handle.seek(shipped)
                data = handle.read(1024 * 1024)
                mtime = path.stat().st_mtime
        except FileNotFoundError:
            return
        if data:
            self._script("APPEND_LOG", entry_id, str(attempt), number(mtime), str(LOG_CAP), data)
            self._shipping[(entry_id, attempt)] = shipped + len(data)

    # -- dispatch bookkeeping (used by the Celery backend) --------------------

    def mark_dispatched(self, entry_ids: Sequence[str], now: float) -> None:
        """Note that a wake-up message was sent for these entries just now."""
        def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.hset(self._key(entry_id), "dispatched_at", number(now))
                pipe.hincrby(self._key(entry_id), "dispatches", 1)
            pipe.execute()

        self._retrying(write)

    def dispatch_info(self, entry_ids: Sequence[str]) -> list[tuple[float, int]]:
        """(last dispatch time, dispatch count) per entry (0, 0 when never dispatched)."""
        def read() -> list[list[bytes | None]]:
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.hmget(self._key(entry_id), "dispatched_at", "dispatches")
            return cast(list[list[bytes | None]], pipe.execute())

        return [(float(at or 0), int(count or 0)) for at, count in self._retrying(read)]

    def await_wakeup(self, entry_ids: Sequence[str]) -> None:
        """Mark these (waiting) entries as never woken for, and notify the workers."""
        self._retrying(lambda: keys.await_wakeup(self.redis, self.prefix, entry_ids))

    def wait_for_wakeup(self, timeout: float) -> bool:
        """Block until a wake-up note arrives (True) or `timeout` seconds pass (False)."""
        key = keys.wakeups_key(self.prefix)
        return self._retrying(lambda: self.redis.blpop([key], timeout=timeout)) is not None

    def waiting_entries(self) -> list[Entry]:
        ids = cast(list[bytes],
                   self._retrying(lambda: self.redis.zrange(f"{self.prefix}waiting", 0, -1)))
        return self._fetch_many([value.decode() for value in ids])
