"""What the embedded queue keeps beside its entries: monitoring counters and worker
presence (and the one query that reads them), and the schedules' last firings.

Counters grow as transitions happen (entries may be removed; a counter never goes
down); workers announce themselves with a presence lease that their heartbeats
renew. `read_stats` answers `QueueBackend.stats` with two grouped queries over
the claim index, whatever the number of entries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tether.queue.base import (
    QUEUED,
    RETRYING,
    RUNNING,
    Firing,
    QueueStats,
    WorkerInfo,
    workers_from_rows,
)

# Waiting since: enqueued (or queued again), requeued, or the end of its retry delay.
_SINCE = "MAX(COALESCE(ended_at, created_at), not_before)"
# The waiting entries' partial index holds that expression: the stats query reads only it.
MONITORING_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT NOT NULL, queue TEXT NOT NULL, until REAL NOT NULL, tags TEXT NOT NULL DEFAULT '',
    seen REAL,
    PRIMARY KEY (id, queue)
);
CREATE INDEX IF NOT EXISTS entries_waiting ON entries (queue, {_SINCE})
    WHERE state IN ('{QUEUED}', '{RETRYING}');
"""
RETRIES = "retries"
LOST_WORKERS = "lost_workers"
# An announcement this long expired belongs to a worker that died without retiring.
FORGET_WORKERS_AFTER = 86400.0

_WAITING = f"""
SELECT queue, COUNT(*), MIN({_SINCE}) FROM entries INDEXED BY entries_waiting
WHERE state IN ('{QUEUED}', '{RETRYING}') GROUP BY queue
"""
_RUNNING = f"SELECT queue, COUNT(*) FROM entries WHERE state = '{RUNNING}' GROUP BY queue"


def count(db: sqlite3.Connection, name: str, added: int) -> None:
    """Add `added` to counter `name`, inside the caller's transaction."""
    if added:
        db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) "
                   "DO UPDATE SET value = value + excluded.value", (name, added))


def announce(db: sqlite3.Connection, worker: str, queues: Sequence[str], until: float,
             now: float, tags: Sequence[str] = ()) -> None:
    """Note that `worker` serves `queues` with `tags` until `until`, inside the caller's
    transaction."""
    joined = ",".join(sorted(set(tags)))
    db.executemany("INSERT OR REPLACE INTO workers (id, queue, until, tags, seen) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [(worker, queue, until, joined, now) for queue in queues])
    db.execute("DELETE FROM workers WHERE until < ?", (now - FORGET_WORKERS_AFTER,))


def live_workers(db: sqlite3.Connection, now: float) -> list[WorkerInfo]:
    """The workers whose announcement runs at `now`, by id."""
    rows = db.execute("SELECT id, queue, until, tags, seen FROM workers WHERE until >= ? "
                      "ORDER BY id, queue", (now,))
    return workers_from_rows(rows)


def read_stats(db: sqlite3.Connection, now: float) -> QueueStats:
    """The queue's figures as of `now` (see `QueueStats`)."""
    waiting: dict[str, int] = {}
    since: dict[str, float] = {}
    for queue, number, waited_from in db.execute(_WAITING):
        waiting[queue], since[queue] = number, waited_from
    running = dict(db.execute(_RUNNING).fetchall())
    workers = dict(db.execute("SELECT queue, COUNT(*) FROM workers WHERE until >= ? "
                              "GROUP BY queue", (now,)).fetchall())
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    known = {row[0] for row in db.execute("SELECT DISTINCT queue FROM entries")}
    return QueueStats(waiting, running, since, workers, counters.get(RETRIES, 0),
                      counters.get(LOST_WORKERS, 0), sorted(known | set(workers)))


SCHEDULES_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule_firings (
    schedule TEXT PRIMARY KEY,
    occurrence REAL NOT NULL,
    worker TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    result TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS schedule_by_hand (
    schedule TEXT PRIMARY KEY,
    at REAL NOT NULL,
    worker TEXT NOT NULL,
    result TEXT NOT NULL
);
"""


def claim_occurrence(db: sqlite3.Connection, schedule: str, occurrence: float, worker: str,
                     now: float) -> bool:
    """`QueueBackend.claim_occurrence` in a transaction `db` holds."""
    # One statement: the row is inserted, or moved forward, only by the first
    # caller for an occurrence newer than the one it holds.
    cursor = db.execute(
        "INSERT INTO schedule_firings (schedule, occurrence, worker, claimed_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (schedule) DO UPDATE SET "
        "occurrence = excluded.occurrence, worker = excluded.worker, "
        "claimed_at = excluded.claimed_at, result = '' "
        "WHERE excluded.occurrence > schedule_firings.occurrence",
        (schedule, occurrence, worker, now))
    return cursor.rowcount == 1


def note_fired(db: sqlite3.Connection, schedule: str, occurrence: float, result: str) -> None:
    """What the claimed `occurrence` enqueued (ignored if a newer one was claimed since)."""
    db.execute("UPDATE schedule_firings SET result = ? WHERE schedule = ? AND occurrence = ?",
               (result, schedule, occurrence))


def fired(db: sqlite3.Connection) -> dict[str, Firing]:
    """The last claimed occurrence of each schedule."""
    rows = db.execute("SELECT schedule, occurrence, worker, claimed_at, result "
                      "FROM schedule_firings").fetchall()
    return {row[0]: Firing(*row) for row in rows}


def note_by_hand(db: sqlite3.Connection, schedule: str, worker: str, at: float,
                 result: str) -> None:
    """`QueueBackend.note_by_hand`: the schedule's last run by hand."""
    db.execute("INSERT INTO schedule_by_hand (schedule, at, worker, result) VALUES "
               "(?, ?, ?, ?) ON CONFLICT (schedule) DO UPDATE SET at = excluded.at, "
               "worker = excluded.worker, result = excluded.result", (schedule, at, worker,
                                                                        result))


def by_hand(db: sqlite3.Connection) -> dict[str, Firing]:
    """The last run by hand of each schedule."""
    rows = db.execute("SELECT schedule, at, worker, at, result FROM schedule_by_hand")
    return {row[0]: Firing(*row) for row in rows.fetchall()}
