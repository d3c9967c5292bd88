"""What the embedded queue keeps for monitoring, and the one query that reads it.

Counters grow as transitions happen (entries may be removed; a counter never goes
down); workers announce themselves with a presence lease that their heartbeats
renew. `read_stats` answers `QueueBackend.stats` with two grouped queries over
the claim index, whatever the number of entries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tether.queue.base import QUEUED, RETRYING, RUNNING, QueueStats, WorkerInfo, workers_from_rows

MONITORING_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT NOT NULL, queue TEXT NOT NULL, until REAL NOT NULL, tags TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (id, queue)
);
"""
RETRIES = "retries"
LOST_WORKERS = "lost_workers"
# An announcement this long expired belongs to a worker that died without retiring.
FORGET_WORKERS_AFTER = 86400.0

# Waiting since: enqueued (or queued again), requeued, or the end of its retry delay.
_STATS = f"""
SELECT queue, state, COUNT(*), MIN(MAX(COALESCE(ended_at, created_at), not_before))
FROM entries WHERE state IN ('{QUEUED}', '{RETRYING}', '{RUNNING}') GROUP BY queue, state
"""


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
    db.executemany("INSERT OR REPLACE INTO workers (id, queue, until, tags) VALUES (?, ?, ?, ?)",
                   [(worker, queue, until, joined) for queue in queues])
    db.execute("DELETE FROM workers WHERE until < ?", (now - FORGET_WORKERS_AFTER,))


def live_workers(db: sqlite3.Connection, now: float) -> list[WorkerInfo]:
    """The workers whose announcement runs at `now`, by id."""
    rows = db.execute("SELECT id, queue, until, tags FROM workers WHERE until >= ? "
                      "ORDER BY id, queue", (now,))
    return workers_from_rows(rows)


def read_stats(db: sqlite3.Connection, now: float) -> QueueStats:
    """The queue's figures as of `now` (see `QueueStats`)."""
    waiting: dict[str, int] = {}
    running: dict[str, int] = {}
    since: dict[str, float] = {}
    for queue, state, number, waited_from in db.execute(_STATS):
        if state == RUNNING:
            running[queue] = number
            continue
        waiting[queue] = waiting.get(queue, 0) + number
        since[queue] = min(since.get(queue, waited_from), waited_from)
    workers = dict(db.execute("SELECT queue, COUNT(*) FROM workers WHERE until >= ? "
                              "GROUP BY queue", (now,)).fetchall())
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    return QueueStats(waiting, running, since, workers, counters.get(RETRIES, 0),
                      counters.get(LOST_WORKERS, 0))
