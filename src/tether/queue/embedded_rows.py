"""The embedded queue's tables, and how a row of `entries` becomes an `Entry`."""

from __future__ import annotations

import json
import sqlite3

from tether.queue.base import Entry
from tether.queue.embedded_stats import MONITORING_SCHEMA, SCHEDULES_SCHEMA

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    name TEXT NOT NULL,
    baseline TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    snapshot_ref TEXT NOT NULL,
    run_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    stage_failures TEXT NOT NULL DEFAULT '{}',
    worker TEXT,
    lease_until REAL,
    heartbeat_at REAL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    not_before REAL NOT NULL DEFAULT 0,
    kill_requested INTEGER NOT NULL DEFAULT 0,
    status TEXT,
    result_ref TEXT,
    error TEXT,
    requires TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS entries_claim ON entries (state, queue, priority DESC, seq);
""" + MONITORING_SCHEMA + SCHEDULES_SCHEMA
COLUMNS = (
    "id queue priority state name baseline snapshot snapshot_ref run_id payload attempt lost "
    "stage_failures worker lease_until heartbeat_at created_at started_at ended_at not_before "
    "kill_requested status result_ref error requires"
).split()
# Requirements not all among the worker's tags (bound as one JSON list): not claimable.
UNMET = ("EXISTS (SELECT 1 FROM json_each(entries.requires) "
          "WHERE value NOT IN (SELECT value FROM json_each(?)))")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM entries"


def entry_of(row: sqlite3.Row) -> Entry:
    """The entry a row of `SELECT` holds."""
    data = dict(zip(COLUMNS, row, strict=True))
    payload = json.loads(data.pop("payload"))
    data["stage_failures"] = json.loads(data["stage_failures"])
    data["kill_requested"] = bool(data["kill_requested"])
    data["requires"] = tuple(json.loads(data["requires"]))
    return Entry(**data).with_payload(payload)
