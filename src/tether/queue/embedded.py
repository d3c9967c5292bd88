"""The embedded queue: one SQLite database (WAL) under `.tether/`, no server.

Every operation is one short transaction on a per-thread connection; claims and
other read-modify-write steps use `BEGIN IMMEDIATE`, so two workers can never
take the same entry. Workers are local processes sharing the project folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tether import sqlitedb
from tether.errors import LocalStateError, QueueError
from tether.queue.base import (
    CANCELLED,
    FAILED,
    MAX_LOST,
    QUEUED,
    RETRYING,
    RUNNING,
    WAITING,
    Entry,
    EventHook,
    Firing,
    Heartbeat,
    LogChunk,
    Outcome,
    QueueEvent,
    QueueStats,
    WorkerInfo,
    can_run,
    read_local_log,
    unknown_entry,
)
from tether.queue.embedded_rows import SCHEMA, SELECT, UNMET, entry_of
from tether.queue.embedded_stats import (
    LOST_WORKERS,
    RETRIES,
    announce,
    by_hand,
    claim_occurrence,
    count,
    fired,
    live_workers,
    note_by_hand,
    note_fired,
    read_stats,
)
from tether.structs import replace


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    """The error for a queue database that cannot be opened (anything else is re-raised)."""
    if path.is_dir():
        return LocalStateError(f"{path} is a directory, not the queue's SQLite database",
                               hint="move it away; `tether run --queue` starts a new queue")
    if "not a database" in str(exc) or "malformed" in str(exc):
        return LocalStateError(
            f"{path} is not a SQLite database (corrupt or overwritten)",
            hint="move it away; the queue's entries in it are lost (recorded experiments are "
            "not: they are refs), and `tether run --queue` starts a new queue")
    return exc


class EmbeddedQueue:
    """A `QueueBackend` on SQLite at `path`; attempt logs under `logs_root`."""

    def __init__(self, path: Path, logs_root: Path, on_event: EventHook | None = None) -> None:
        self.path = path
        self.logs_root = logs_root
        self.on_event = on_event
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._db()
            db.executescript(SCHEMA)  # idempotent; manages its transaction
            for table, column, declared in (("entries", "requires", "TEXT NOT NULL DEFAULT '[]'"),
                                            ("workers", "tags", "TEXT NOT NULL DEFAULT ''"),
                                            ("workers", "seen", "REAL")):
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:  # a queue made before that column existed
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declared}")
        except sqlite3.DatabaseError as exc:
            raise _unusable(path, exc) from exc

    # -- plumbing ---------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlitedb.connect(self.path)
            self._local.db = db
        return db

    @contextmanager
    def _tx(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _emit(self, kind: str, entries: Iterable[Entry], detail: str = "") -> None:
        if self.on_event is not None:
            for entry in entries:
                self.on_event(QueueEvent(kind, entry, detail))

    def _fetch(self, db: sqlite3.Connection, entry_id: str) -> Entry | None:
        row = db.execute(f"{SELECT} WHERE id = ?", (entry_id,)).fetchone()
        return entry_of(row) if row else None

    def _update(self, db: sqlite3.Connection, entry_id: str, **values: Any) -> Entry:
        sets, args = _assignments(values)
        db.execute(f"UPDATE entries SET {sets} WHERE id = ?", (*args, entry_id))
        entry = self._fetch(db, entry_id)
        assert entry is not None
        return entry

    # -- the interface ----------------------------------------------------

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        rows = [
            (e.id, e.queue, e.priority, QUEUED, e.name, e.baseline, e.snapshot, e.snapshot_ref,
             e.run_id, json.dumps(e.payload()), e.created_at or now, e.not_before,
             json.dumps(sorted(set(e.requires))))
            for e in entries
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO entries (id, queue, priority, state, name, baseline, snapshot, "
                "snapshot_ref, run_id, payload, created_at, not_before, requires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
            )
        self._emit("queued", [replace(e, state=QUEUED) for e in entries])

    def get(self, entry_id: str) -> Entry | None:
        db = self._db()
        rows = db.execute(f"{SELECT} WHERE id = ? OR id LIKE ? ORDER BY seq LIMIT 3",
                          (entry_id, entry_id.replace("%", "").replace("_", "") + "%")).fetchall()
        exact = [row for row in rows if row[0] == entry_id]
        if exact:
            return entry_of(exact[0])
        if len(rows) > 1:
            raise QueueError(f"queue entry id {entry_id!r} is ambiguous",
                             hint="give more characters of the id (see `tether queue status`)")
        return entry_of(rows[0]) if rows else None

    def entries(
        self, states: Iterable[str] | None = None, queues: Iterable[str] | None = None
    ) -> list[Entry]:
        where, args = [], []
        for column, values in (("state", states), ("queue", queues)):
            if values is not None:
                chosen = list(values)
                where.append(f"{column} IN ({', '.join('?' * len(chosen))})")
                args += chosen
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db().execute(f"{SELECT}{clause} ORDER BY seq", args).fetchall()
        return [entry_of(row) for row in rows]

    def reserved_names(self, baseline: str) -> set[str]:
        rows = self._db().execute("SELECT name FROM entries WHERE baseline = ?", (baseline,))
        return {row[0] for row in rows}

    def claim(self, queues: Sequence[str], worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        marks = ", ".join("?" * len(queues))
        with self._tx() as db:
            row = db.execute(
                f"SELECT id FROM entries WHERE state IN (?, ?) AND queue IN ({marks}) "
                f"AND not_before <= ? AND NOT {UNMET} ORDER BY priority DESC, seq LIMIT 1",
                (*WAITING, *queues, now, json.dumps(list(tags))),
            ).fetchone()
            if row is None:
                return None
            entry = self._take(db, row[0], worker, now, lease)
        self._emit("started", [entry], worker)
        return entry

    def start(self, entry_id: str, worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        with self._tx() as db:
            entry = self._fetch(db, entry_id)
            if entry is None or entry.state not in WAITING or entry.not_before > now \
                    or not can_run(entry.requires, tags):
                return None
            entry = self._take(db, entry.id, worker, now, lease)
        self._emit("started", [entry], worker)
        return entry

    def _take(
        self, db: sqlite3.Connection, entry_id: str, worker: str, now: float, lease: float
    ) -> Entry:
        return self._update(
            db, entry_id, state=RUNNING, attempt=_Sql("attempt + 1"), worker=worker,
            lease_until=now + lease, heartbeat_at=now, started_at=now, ended_at=None,
        )

    def heartbeat(
        self, entry_id: str, attempt: int, worker: str, now: float, lease: float
    ) -> Heartbeat:
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE entries SET lease_until = ?, heartbeat_at = ? "
                "WHERE id = ? AND state = ? AND attempt = ? AND worker = ?",
                (now + lease, now, entry_id, RUNNING, attempt, worker),
            )
            row = db.execute("SELECT kill_requested FROM entries WHERE id = ?",
                             (entry_id,)).fetchone()
        return Heartbeat(owned=cursor.rowcount == 1, kill_requested=bool(row and row[0]))

    def finish(
        self, entry_id: str, attempt: int, worker: str, outcome: Outcome, now: float
    ) -> bool:
        values: dict[str, Any] = {
            "state": outcome.state, "status": outcome.status, "result_ref": outcome.result_ref,
            "error": outcome.error, "ended_at": now, "lease_until": None,
            "not_before": outcome.not_before, "kill_requested": 0,
        }
        if outcome.stage_failures is not None:
            values["stage_failures"] = json.dumps(outcome.stage_failures)
        with self._tx() as db:
            current = self._fetch(db, entry_id)
            if current is None or (current.state, current.attempt, current.worker) != (
                RUNNING, attempt, worker
            ):
                return False
            entry = self._update(db, entry_id, **values)
            if outcome.state == RETRYING:
                count(db, RETRIES, 1)
        self._emit(outcome.state, [entry], outcome.error or "")
        return True

    def requeue_expired(self, now: float) -> list[Entry]:
        changed = []
        with self._tx() as db:
            rows = db.execute(f"{SELECT} WHERE state = ? AND lease_until < ?",
                              (RUNNING, now)).fetchall()
            for row in rows:
                entry = entry_of(row)
                lost = entry.lost + 1
                gone = f"worker {entry.worker} lost (lease expired) in attempt {entry.attempt}"
                if lost >= MAX_LOST:
                    state, error = FAILED, f"{gone}; gave up after {lost} lost workers"
                else:
                    state, error = QUEUED, gone
                changed.append(self._update(
                    db, entry.id, state=state, lost=lost, error=error, lease_until=None,
                    ended_at=now, not_before=0,
                ))
            count(db, LOST_WORKERS, len(rows))
        for entry in changed:
            self._emit("requeued" if entry.state == QUEUED else FAILED, [entry], entry.error or "")
        return changed

    def request_kill(self, entry_id: str, now: float) -> Entry:
        with self._tx() as db:
            entry = self._require(db, entry_id)
            if entry.state in WAITING:
                entry = self._update(db, entry.id, state=CANCELLED, ended_at=now,
                                     error="cancelled before it ran")
                cancelled = True
            elif entry.state == RUNNING:
                entry = self._update(db, entry.id, kill_requested=1)
                cancelled = False
            else:
                raise QueueError(f"entry {entry.id} is already {entry.state}")
        if cancelled:
            self._emit(CANCELLED, [entry], "killed while waiting")
        return entry

    def remove(self, entry_ids: Iterable[str]) -> list[Entry]:
        removed = []
        with self._tx() as db:
            for entry_id in entry_ids:
                entry = self._require(db, entry_id)
                if entry.state == RUNNING:
                    raise QueueError(f"entry {entry.id} is running",
                                     hint=f"stop it first: tether queue kill {entry.id}")
                db.execute("DELETE FROM entries WHERE id = ?", (entry.id,))
                removed.append(entry)
        return removed

    def retry(self, entry_id: str, *, name: str, run_id: str, now: float) -> Entry:
        with self._tx() as db:
            entry = self._require(db, entry_id)
            if entry.state not in (FAILED, CANCELLED):
                raise QueueError(f"entry {entry.id} is {entry.state}; only failed or cancelled "
                                 "entries can be retried")
            entry = self._update(
                db, entry.id, state=QUEUED, name=name, run_id=run_id, attempt=0, lost=0,
                stage_failures="{}", worker=None, started_at=None, ended_at=None, not_before=0,
                status=None, result_ref=None, error=None, kill_requested=0, created_at=now,
            )
        self._emit(QUEUED, [entry], "retry")
        return entry

    def _require(self, db: sqlite3.Connection, entry_id: str) -> Entry:
        entry = self._fetch(db, entry_id)
        if entry is None:
            raise unknown_entry(entry_id)
        return entry

    def claim_occurrence(self, schedule: str, occurrence: float, worker: str,
                         now: float) -> bool:
        with self._tx() as db:
            return claim_occurrence(db, schedule, occurrence, worker, now)

    def note_fired(self, schedule: str, occurrence: float, result: str) -> None:
        with self._tx() as db:
            note_fired(db, schedule, occurrence, result)

    def fired(self) -> dict[str, Firing]:
        return fired(self._db())

    def note_by_hand(self, schedule: str, worker: str, at: float, result: str) -> None:
        with self._tx() as db:
            note_by_hand(db, schedule, worker, at, result)

    def by_hand(self) -> dict[str, Firing]:
        return by_hand(self._db())

    def attempt_dir(self, entry_id: str, attempt: int) -> Path:
        return self.logs_root / entry_id / str(attempt)

    def read_log(self, entry_id: str, attempt: int, offset: int = 0) -> LogChunk:
        chunk = read_local_log(self.attempt_dir(entry_id, attempt) / "output.log", offset)
        return chunk if chunk is not None else LogChunk(b"", offset, None)

    def stats(self, now: float) -> QueueStats:
        return read_stats(self._db(), now)

    def announce_worker(self, worker: str, queues: Sequence[str], now: float,
                        lease: float, tags: Sequence[str] = ()) -> None:
        with self._tx() as db:
            announce(db, worker, queues, now + lease, now, tags)

    def live_workers(self, now: float) -> list[WorkerInfo]:
        return live_workers(self._db(), now)

    def retire_worker(self, worker: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM workers WHERE id = ?", (worker,))

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _Sql(str):
    """An SQL expression to use as an UPDATE value instead of a bound parameter."""


def _assignments(values: dict[str, Any]) -> tuple[str, list[Any]]:
    parts, args = [], []
    for key, value in values.items():
        if isinstance(value, _Sql):
            parts.append(f"{key} = {value}")
        else:
            parts.append(f"{key} = ?")
            args.append(value)
    return ", ".join(parts), args

