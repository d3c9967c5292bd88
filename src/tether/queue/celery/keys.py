"""The Redis key layout of the queue state, and the writes an enqueue makes.

Keys, under the prefix `P` = `tether:<namespace>:`:

- `P e:<id>`: a hash per entry (an absent field is None; numbers are the strings
  Python wrote); `dispatches` and `dispatched_at` count the Celery wake-ups sent;
- `P seq`: the enqueue counter; `P all`: zset of every entry id → its sequence;
  `P waiting`: zset of queued/retrying ids → sequence; `P leases`: zset of running
  ids → lease end;
- `P log:<id>:<attempt>` and `P logat:<id>:<attempt>`: an attempt's shipped output
  and when output last arrived;
- `P queues`, `P qwait:<queue>`, `P qrun:<queue>`, `P qindex`: the per-queue index of
  waiting and running entries (see `tether.queue.celery.lua`);
- `P counters`: a hash of the `retries` and `lost_workers` counters (the Lua scripts
  count them); `P workers`: zset of `<worker>\t<queue>\t<tags>` (tags joined by
  commas) → end of the worker's presence lease, renewed with its heartbeats;
  `P workers_seen`: zset of `<worker>` → when it last announced itself;
- `P wakeups`: a list of at most one item, pushed whenever entries become waiting
  with no wake-up sent for them (enqueue, `tether queue retry`, a requeue seen by a
  client). Celery workers block on it and send the wake-ups themselves, so a client
  never needs Celery.

Transitions after enqueue are Lua scripts (`tether.queue.celery.lua`). Enqueue and
the names it reserves are here, on a redis-py client: `tether run --queue`
(`tether.queue.celery.client`) and the workers (`tether.queue.celery.state`) share them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tether.errors import QueueError
from tether.queue.base import QUEUED, Entry, Firing, QueueStats, WorkerInfo, workers_from_rows

if TYPE_CHECKING:
    import redis

T = TypeVar("T")


def connect(url: str) -> redis.Redis:
    """A redis-py client for the state store at `url` (redis-py is imported here, lazily)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5,
                                health_check_interval=10)


def transient_errors() -> tuple[type[BaseException], ...]:
    """redis-py's errors worth retrying: the server is away or still loading its data."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError)


def key_prefix(namespace: str) -> str:
    return f"tether:{namespace}:"


def entry_key(prefix: str, entry_id: str) -> str:
    return f"{prefix}e:{entry_id}"


def wakeups_key(prefix: str) -> str:
    return f"{prefix}wakeups"


def number(value: float) -> str:
    """A float as the state store keeps it (Lua reads it back with tonumber)."""
    return repr(float(value))


def write_entries(conn: redis.Redis, prefix: str, entries: Sequence[Entry],
                  now: float) -> None:
    """Add entries, queued, in one transaction that also notes they await a wake-up.

    Safe to repeat when a reply was lost: entries already written (the transaction
    is all or nothing, and ids are new) are not written again, since a worker may
    have started them meanwhile.
    """
    if not entries:
        return
    check = conn.pipeline(transaction=False)
    check.exists(entry_key(prefix, entries[0].id))
    check.incrby(f"{prefix}seq", len(entries))
    written, last = check.execute()
    if written:
        return
    last = int(last)
    pipe = conn.pipeline(transaction=True)
    for seq, entry in enumerate(entries, start=last - len(entries) + 1):
        fields: dict[str, str | int] = {
            "id": entry.id, "queue": entry.queue, "priority": entry.priority,
            "state": QUEUED, "name": entry.name, "baseline": entry.baseline,
            "snapshot": entry.snapshot, "snapshot_ref": entry.snapshot_ref,
            "run_id": entry.run_id, "payload": json.dumps(entry.payload()),
            "attempt": 0, "lost": 0, "stage_failures": "{}",
            "created_at": number(entry.created_at or now),
            "not_before": number(entry.not_before), "kill_requested": "0", "seq": seq,
            "requires": ",".join(sorted(set(entry.requires))),
        }
        pipe.hset(entry_key(prefix, entry.id), mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(f"{prefix}all", {entry.id: seq})
        pipe.zadd(f"{prefix}waiting", {entry.id: seq})
        # The per-queue index of `STATS` (tether.queue.celery.lua): waiting since.
        pipe.sadd(f"{prefix}queues", entry.queue)
        pipe.zadd(f"{prefix}qwait:{entry.queue}",
                  {entry.id: max(entry.created_at or now, entry.not_before)})
    _wakeup_note(pipe, prefix, len(entries))
    pipe.execute()


def await_wakeup(conn: redis.Redis, prefix: str, entry_ids: Sequence[str]) -> None:
    """Mark entries (now waiting) as never woken for, and tell the workers."""
    pipe = conn.pipeline(transaction=True)
    for entry_id in entry_ids:
        pipe.hset(entry_key(prefix, entry_id), "dispatches", 0)
    _wakeup_note(pipe, prefix, len(entry_ids))
    pipe.execute()


def _wakeup_note(pipe: Any, prefix: str, count: int) -> None:
    # One item at most: a worker that wakes handles every waiting entry anyway.
    pipe.lpush(wakeups_key(prefix), count)
    pipe.ltrim(wakeups_key(prefix), 0, 0)


def reserved_names(conn: redis.Redis, prefix: str, baseline: str) -> set[str]:
    """Names of the entries under `baseline` (two fields per entry: every enqueue asks)."""
    ids = cast("list[bytes]", conn.zrange(f"{prefix}all", 0, -1))
    if not ids:
        return set()
    pipe = conn.pipeline(transaction=False)
    for entry_id in ids:
        pipe.hmget(entry_key(prefix, entry_id.decode()), "name", "baseline")
    return {name.decode() for name, base in pipe.execute()
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
    from tether.urls import mask_urls

    return mask_urls(url)


# An announcement this long expired belongs to a worker that died without retiring.
FORGET_WORKERS_AFTER = 86400.0


def announce_worker(conn: redis.Redis, prefix: str, worker: str, queues: Sequence[str],
                    until: float, now: float, tags: Sequence[str] = ()) -> None:
    """Note that `worker` serves `queues` with `tags` until `until` (and forget long-dead
    workers)."""
    joined = ",".join(sorted(set(tags)))
    pipe = conn.pipeline(transaction=True)
    pipe.zadd(f"{prefix}workers", {f"{worker}\t{queue}\t{joined}": until for queue in queues})
    pipe.zadd(f"{prefix}workers_seen", {worker: now})
    pipe.zremrangebyscore(f"{prefix}workers", "-inf", now - FORGET_WORKERS_AFTER)
    pipe.zremrangebyscore(f"{prefix}workers_seen", "-inf", now - FORGET_WORKERS_AFTER)
    pipe.execute()


def retire_worker(conn: redis.Redis, prefix: str, worker: str) -> None:
    """Forget `worker`'s announcements."""
    members = cast("list[bytes]", conn.zrange(f"{prefix}workers", 0, -1))
    mine = [m for m in members if m.decode().partition("\t")[0] == worker]
    pipe = conn.pipeline(transaction=True)
    if mine:
        pipe.zrem(f"{prefix}workers", *mine)
    pipe.zrem(f"{prefix}workers_seen", worker)
    pipe.execute()


def live_workers(conn: redis.Redis, prefix: str, now: float) -> list[WorkerInfo]:
    """The workers whose announcement runs at `now`, by id."""
    members = cast("list[tuple[bytes, float]]", conn.zrangebyscore(
        f"{prefix}workers", number(now), "+inf", withscores=True))
    parsed = []
    for member, until in members:
        worker, _, rest = member.decode().partition("\t")
        queue, _, tags = rest.partition("\t")
        parsed.append((worker, queue, float(until), tags))
    ids = sorted({row[0] for row in parsed})
    scores = conn.zmscore(f"{prefix}workers_seen", ids) if ids else []
    seen = dict(zip(ids, scores, strict=True))
    return workers_from_rows((*row, seen.get(row[0])) for row in parsed)


def stats_from_json(raw: bytes) -> QueueStats:
    """The `QueueStats` of the STATS script's reply."""
    data = json.loads(raw)
    queues = data["queues"] if isinstance(data["queues"], dict) else {}  # {} encodes as []
    workers: dict[str, int] = {}
    for member in data["workers"] if isinstance(data["workers"], list) else []:
        queue = str(member).split("\t")[1]
        workers[queue] = workers.get(queue, 0) + 1
    return QueueStats(
        waiting={q: int(f[0]) for q, f in queues.items() if f[0]},
        running={q: int(f[1]) for q, f in queues.items() if f[1]},
        waiting_since={q: float(f[2]) for q, f in queues.items() if f[2] is not False},
        workers=workers, retries=int(data["retries"]), lost_workers=int(data["lost_workers"]),
        queues=sorted(set(queues) | set(workers)),
    )


def _named_hashes(conn: redis.Redis, names_key: str, prefix: str) -> dict[str, dict[str, str]]:
    """The hash `<prefix><name>` of every name in the set `names_key`, decoded, by name
    (one round trip for all of them)."""
    members = cast(set[bytes], conn.smembers(names_key))
    names = sorted(name.decode() for name in members)
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(f"{prefix}{name}")
    return {name: {k.decode(): v.decode() for k, v in raw.items()}
            for name, raw in zip(names, pipe.execute(), strict=True)}


def read_firings(conn: redis.Redis, prefix: str) -> dict[str, Firing]:
    """The last claimed occurrence of each schedule (`QueueBackend.fired`)."""
    return {name: Firing(name, float(data["occurrence"]), data["worker"],
                         float(data["claimed_at"]), data.get("result", ""))
            for name, data in _named_hashes(conn, f"{prefix}schedules",
                                            f"{prefix}firing:").items()}


def write_by_hand(conn: redis.Redis, prefix: str, schedule: str, worker: str, at: float,
                  result: str) -> None:
    """`QueueBackend.note_by_hand`: `P byhand:<schedule>` (at worker result), its name in
    `P byhand`."""
    pipe = conn.pipeline(transaction=True)
    pipe.hset(f"{prefix}byhand:{schedule}", mapping={"at": number(at), "worker": worker,
                                                      "result": result})
    pipe.sadd(f"{prefix}byhand", schedule)
    pipe.execute()


def read_by_hand(conn: redis.Redis, prefix: str) -> dict[str, Firing]:
    """The last run by hand of each schedule (`QueueBackend.by_hand`)."""
    return {name: Firing(name, float(data["at"]), data["worker"], float(data["at"]),
                         data.get("result", ""))
            for name, data in _named_hashes(conn, f"{prefix}byhand",
                                            f"{prefix}byhand:").items() if data}


def live_ids(conn: redis.Redis, prefix: str) -> list[str]:
    """The ids of the waiting and running entries (`P waiting`, `P leases`, read in one
    transaction), in enqueue order: what a worker deciding whether it is idle reads,
    without going through every entry kept."""
    pipe = conn.pipeline(transaction=True)
    pipe.zrange(f"{prefix}waiting", 0, -1)
    pipe.zrange(f"{prefix}leases", 0, -1)
    waiting, running = pipe.execute()
    ids = list(dict.fromkeys(value.decode() for value in [*waiting, *running]))
    if not ids:
        return []
    seqs = conn.zmscore(f"{prefix}all", ids)
    order = {entry_id: seq if seq is not None else float("inf")
             for entry_id, seq in zip(ids, seqs, strict=True)}
    return sorted(ids, key=order.__getitem__)
