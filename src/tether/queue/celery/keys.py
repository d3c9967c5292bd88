"""The Redis key layout of the queue state, and the writes an enqueue makes.

Keys, under the prefix `P` = `tether:<namespace>:`:

- `P e:<id>`: a hash per entry (an absent field is None; numbers are the strings
  Python wrote); `dispatches` and `dispatched_at` count the Celery wake-ups sent;
- `P seq`: the enqueue counter; `P all`: zset of every entry id → its sequence;
  `P waiting`: zset of queued/retrying ids → sequence; `P leases`: zset of running
  ids → lease end;
- `P log:<id>:<attempt>` and `P logat:<id>:<attempt>`: an attempt's shipped output
  and when output last arrived;
- `P wakeups`: a list of at most one item, pushed whenever entries become waiting
  with no wake-up sent for them (enqueue, `tether queue retry`, a requeue seen by a
  client). Celery workers block on it and send the wake-ups themselves, so a client
  never needs Celery.

Transitions after enqueue are Lua scripts (`tether.queue.celery.lua`). Enqueue and
the names it reserves are here, written against `Commands` (one pipelined
`execute`), which both redis-py (`tether.queue.celery.state`, workers and queue
commands) and the light client of the enqueue path (`tether.queue.resp`) provide.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from tether.errors import QueueError
from tether.queue.base import QUEUED, Entry
from tether.queue.resp import Command

T = TypeVar("T")


class Commands(Protocol):
    """A Redis connection that runs a pipeline of commands and returns their replies."""

    def execute(self, commands: Sequence[Command], *, transaction: bool = False) -> list[Any]:
        """Replies in order (inside MULTI/EXEC when `transaction`)."""


def key_prefix(namespace: str) -> str:
    return f"tether:{namespace}:"


def entry_key(prefix: str, entry_id: str) -> str:
    return f"{prefix}e:{entry_id}"


def wakeups_key(prefix: str) -> str:
    return f"{prefix}wakeups"


def number(value: float) -> str:
    """A float as the state store keeps it (Lua reads it back with tonumber)."""
    return repr(float(value))


def write_entries(conn: Commands, prefix: str, entries: Sequence[Entry], now: float) -> None:
    """Add entries, queued, in one transaction that also notes they await a wake-up.

    Safe to repeat when a reply was lost: entries already written (the transaction
    is all or nothing, and ids are new) are not written again, since a worker may
    have started them meanwhile.
    """
    if not entries:
        return
    written, last = conn.execute([("EXISTS", entry_key(prefix, entries[0].id)),
                                  ("INCRBY", f"{prefix}seq", len(entries))])
    if written:
        return
    last = int(last)
    commands: list[Command] = []
    for seq, entry in enumerate(entries, start=last - len(entries) + 1):
        fields: dict[str, str | int] = {
            "id": entry.id, "queue": entry.queue, "priority": entry.priority,
            "state": QUEUED, "name": entry.name, "baseline": entry.baseline,
            "snapshot": entry.snapshot, "snapshot_ref": entry.snapshot_ref,
            "run_id": entry.run_id, "payload": json.dumps(entry.payload()),
            "attempt": 0, "lost": 0, "stage_failures": "{}",
            "created_at": number(entry.created_at or now),
            "not_before": number(entry.not_before), "kill_requested": "0", "seq": seq,
        }
        flat = [part for pair in fields.items() for part in pair]
        commands += [("HSET", entry_key(prefix, entry.id), *flat),
                     ("ZADD", f"{prefix}all", seq, entry.id),
                     ("ZADD", f"{prefix}waiting", seq, entry.id)]
    conn.execute([*commands, *_wakeup_note(prefix, len(entries))], transaction=True)


def await_wakeup(conn: Commands, prefix: str, entry_ids: Sequence[str]) -> None:
    """Mark entries (now waiting) as never woken for, and tell the workers."""
    resets: list[Command] = [("HSET", entry_key(prefix, i), "dispatches", 0) for i in entry_ids]
    conn.execute([*resets, *_wakeup_note(prefix, len(entry_ids))], transaction=True)


def _wakeup_note(prefix: str, count: int) -> list[Command]:
    # One item at most: a worker that wakes handles every waiting entry anyway.
    return [("LPUSH", wakeups_key(prefix), count), ("LTRIM", wakeups_key(prefix), 0, 0)]


def reserved_names(conn: Commands, prefix: str, baseline: str) -> set[str]:
    """Names of the entries under `baseline` (two fields per entry: every enqueue asks)."""
    ids = conn.execute([("ZRANGE", f"{prefix}all", 0, -1)])[0]
    if not ids:
        return set()
    replies = conn.execute([("HMGET", entry_key(prefix, i.decode()), "name", "baseline")
                            for i in ids])
    return {name.decode() for name, base in replies
            if name is not None and base is not None and base.decode() == baseline}


def retrying(call: Callable[[], T], url: str, window: float,
             transient: tuple[type[BaseException], ...]) -> T:
    """`call()`, repeated on `transient` errors for up to `window` seconds."""
    deadline = time.monotonic() + window
    delay = 0.1
    while True:
        try:
            return call()
        except transient as exc:
            if time.monotonic() >= deadline:
                raise QueueError(
                    f"the queue state store at {redacted(url)} is unreachable: {exc}",
                    hint="check that Redis is running and queue.state (or queue.broker) "
                    "in .tether/config.yaml points at it",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def redacted(url: str) -> str:
    """`url` with its password (and secret query parameters) replaced by ***."""
    from tether.record.redact import mask_urls

    return mask_urls(url)
