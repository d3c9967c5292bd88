"""The queue interface: entries, their states, and what every backend must do.

Design (the embedded SQLite backend and the Celery backend both implement it and
both pass `tests/queue/contract.py`):

- An `Entry` is one experiment to run: the workspace snapshot it starts from (a
  commit on `refs/tether/queue/<snapshot-id>`, shared by every entry of a sweep),
  the baseline it is recorded against (the user's HEAD at enqueue), its run
  arguments (targets, `-S` overrides, bare command, extra env such as
  `TETHER_SEED`), the experiment name chosen at enqueue and the run id. Every
  attempt records with that same run id, so a run that is already recorded is
  recognized and never run twice.
- States: `queued` → `running` → `done` | `failed` | `cancelled`; a retryable
  failure goes `running` → `retrying` (claimable again from `not_before`,
  exponential backoff); a lost worker's entry goes back to `queued`.
  `attempt` counts attempts started (a claim increments it).
- Liveness is tether's own lease, never a broker ack: a claim sets
  `lease_until = now + lease`; the worker renews it with `heartbeat()` (which
  also reports a pending kill request and whether the worker still owns the
  entry); anyone may call `requeue_expired(now)` to put entries whose lease ran
  out back in the queue (or fail them after `MAX_LOST` lost workers). Every
  transition after a claim is fenced by (entry id, attempt, worker): a worker
  that lost its entry cannot overwrite what the new owner reports.
- Time is always a parameter (`now`), so tests of a 2-hour lease take no time.
- `claim()` picks the best claimable entry (highest priority, then oldest) of
  the given named queues; `start()` claims one given entry (for push-style
  backends such as Celery, whose task carries the entry id).
- Requirements and tags: an entry `requires` tags (`tether run --queue --require
  gpu`, and `require:` of its stages); a worker has tags (`tether worker --tags
  gpu,a100`). `claim()` and `start()` take only entries whose requirements are a
  subset of the worker's tags, in the same atomic step as the claim.
- Live workers: see Monitoring below; `live_workers(now)` lists the workers whose
  announcement has not run out, with their queues and tags (`tether queue status`
  explains with them why an entry no live worker can take waits).
- Lifecycle hook: a backend calls `on_event(QueueEvent)` for each transition it
  makes (queued, started, retrying, requeued, done, failed, cancelled); the
  worker adds `stalled` (no output) and `stage` events through the same hook.
  The hook runs in whichever process made the transition.
- Schedules: `claim_occurrence(schedule, occurrence, ...)` is True for exactly one
  caller per (schedule, occurrence time), and never for an occurrence older than one
  already claimed; whichever worker wins enqueues it and reports what it enqueued with
  `note_fired`. `fired()` is the last claimed occurrence of each schedule.
  A run by hand (`tether schedule run`) claims no occurrence: `note_by_hand` keeps
  the last one apart (`by_hand()`), so it never takes a scheduled occurrence's place.
- Monitoring: `stats(now)` reads, in one pass and without listing entries, what
  `tether metrics` exports (waiting and running per queue, the oldest claimable
  wait, live workers, and the retry and lost-worker counters a backend keeps as
  it makes those transitions). Workers announce themselves with
  `announce_worker()` (queues and tags) on every heartbeat round (a presence lease) and
  `retire_worker()` when they stop.
- Logs: a worker writes each attempt's output under `attempt_dir(id, attempt)`
  on its own machine; clients read them with `read_log()` (a backend whose
  workers are remote ships them itself).

The worker logic (`tether.queue.worker`) only uses this interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tether.errors import QueueError
from tether.structs import field, replace, struct

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
RETRYING = "retrying"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, RETRYING, CANCELLED)
WAITING = (QUEUED, RETRYING)
FINAL = (DONE, FAILED, CANCELLED)

DEFAULT_QUEUE = "default"
# A worker lost this many times on one entry fails it (a poison entry must not
# take down worker after worker forever).
MAX_LOST = 3


@struct(frozen=True)
class Entry:
    """One queued experiment and where it is in its life."""

    id: str
    name: str
    baseline: str
    snapshot: str
    snapshot_ref: str
    run_id: str
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    state: str = QUEUED
    targets: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # a bare command's settings
    wdir: str = "."
    env: dict[str, str] = field(default_factory=dict)
    message: str = ""
    force: bool = False
    # A reproduction (`tether repro --queue`): the original experiment and the
    # tolerances, recorded as the run's `reproduces` (see feedback.repro).
    reproduces: dict[str, Any] | None = None
    attempt: int = 0
    lost: int = 0
    stage_failures: dict[str, int] = field(default_factory=dict)
    worker: str | None = None
    lease_until: float | None = None
    heartbeat_at: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    not_before: float = 0.0
    kill_requested: bool = False
    status: str | None = None  # the recorded run's status (success, failed, ...)
    result_ref: str | None = None
    error: str | None = None
    requires: tuple[str, ...] = ()  # tags a worker needs to take it (sorted, unique)

    def payload(self) -> dict[str, Any]:
        """The run arguments as JSON-able data (what a backend stores verbatim)."""
        return {
            "targets": list(self.targets), "overrides": list(self.overrides),
            "command": list(self.command) if self.command is not None else None,
            "limits": self.limits, "wdir": self.wdir, "env": self.env,
            "message": self.message, "force": self.force,
            **({"reproduces": self.reproduces} if self.reproduces is not None else {}),
        }

    def with_payload(self, data: dict[str, Any]) -> Entry:
        command = data.get("command")
        return replace(
            self, targets=tuple(data.get("targets", ())),
            overrides=tuple(data.get("overrides", ())),
            command=tuple(command) if command is not None else None,
            limits=dict(data.get("limits", {})), wdir=data.get("wdir", "."),
            env=dict(data.get("env", {})), message=data.get("message", ""),
            force=bool(data.get("force", False)),
            reproduces=data["reproduces"] if isinstance(data.get("reproduces"), dict) else None,
        )


@struct(frozen=True)
class WorkerInfo:
    """A live worker as it announced itself: what it serves and can run."""

    id: str
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    tags: tuple[str, ...] = ()
    until: float = 0.0  # no heartbeat by then: the worker is gone
    seen: float | None = None  # its last announcement (heartbeat round); None: not kept


def workers_from_rows(
    rows: Iterable[tuple[str, str, float, str, float | None]],
) -> list[WorkerInfo]:
    """Live workers, by id, from (worker, queue, until, comma-joined tags, announced at)
    announcements."""
    found: dict[str, WorkerInfo] = {}
    for worker, queue, until, tags, seen in rows:
        known = found.get(worker)
        queues = (*known.queues, queue) if known else (queue,)
        seens = [s for s in (seen, known.seen if known else None) if s is not None]
        found[worker] = WorkerInfo(worker, queues, tuple(t for t in tags.split(",") if t),
                                   max(until, known.until if known else until),
                                   max(seens) if seens else None)
    return [found[worker] for worker in sorted(found)]


@struct(frozen=True)
class Heartbeat:
    """What a lease renewal learned: does the worker still own it, is a kill pending."""

    owned: bool
    kill_requested: bool


@struct(frozen=True)
class Outcome:
    """How an attempt ended, as the worker reports it to `finish()`."""

    state: str  # done failed cancelled retrying queued
    status: str | None = None
    result_ref: str | None = None
    error: str | None = None
    not_before: float = 0.0
    stage_failures: dict[str, int] | None = None


@struct(frozen=True)
class QueueEvent:
    """A lifecycle event: queued started stage stalled retrying requeued done failed cancelled."""

    kind: str
    entry: Entry
    detail: str = ""
    at: float = field(default_factory=time.time)
    # What a run's own event carried: for its "started", the stages' `expected` durations.
    data: dict[str, Any] = field(default_factory=dict)


EventHook = Callable[[QueueEvent], None]


@struct(frozen=True)
class Firing:
    """The last claimed occurrence of a schedule: when, by which worker, what it enqueued."""

    schedule: str
    occurrence: float  # the occurrence's time (epoch seconds)
    worker: str  # host:pid of the worker that claimed it
    claimed_at: float
    result: str = ""  # what it enqueued ("" while being enqueued), or why it failed


@struct(frozen=True)
class QueueStats:
    """What `tether metrics` reads of a queue at scrape time (see `QueueBackend.stats`)."""

    waiting: dict[str, int]  # queue -> queued + retrying entries
    running: dict[str, int]  # queue -> running entries
    # queue -> since when its longest-waiting claimable entry waits (enqueued, requeued,
    # or its retry delay over)
    waiting_since: dict[str, float]
    workers: dict[str, int]  # queue -> workers whose presence lease has not expired
    retries: int  # attempts that ended retrying, ever
    lost_workers: int  # leases that expired (a worker died or hung), ever
    queues: list[str]  # every queue the store knows (the dicts leave out zeros)


@struct(frozen=True)
class LogChunk:
    data: bytes
    offset: int  # where the next read starts
    mtime: float | None  # when output last arrived (None: no log yet)


def check_queue_name(name: str, option: str = "queue") -> str:
    """`name` if it can name a queue; a UsageError for an empty or blank one.

    No worker takes entries of a queue it cannot be told to serve, so such
    entries would wait forever.
    """
    from tether.errors import UsageError

    if not name or name != name.strip() or any(ch.isspace() or not ch.isprintable()
                                               for ch in name):
        raise UsageError(
            f"{option} {name!r}: a queue name must be non-empty, without blanks",
            hint=f"leave the name out for the {DEFAULT_QUEUE!r} queue, or give one such as gpu",
        )
    return name


def check_tags(values: Iterable[str], option: str) -> tuple[str, ...]:
    """Tags (or requirements) from repeatable, comma-separated options: sorted, unique.

    A UsageError names a tag that could not be matched exactly (blank, or with
    spaces or other characters a worker could not be told in `--tags`).
    """
    from tether.errors import UsageError
    from tether.spec.values import TAG

    found: set[str] = set()
    for value in values:
        for tag in value.split(","):
            tag = tag.strip()
            if not TAG.fullmatch(tag):
                raise UsageError(
                    f"{option} {value!r}: {tag!r} is not a tag; a tag is letters, digits and "
                    "_ . : = + - (such as gpu, a100, cuda=12)",
                    hint=f"separate tags with commas: {option} gpu,a100")
            found.add(tag)
    return tuple(sorted(found))


def can_run(requires: Iterable[str], tags: Iterable[str]) -> bool:
    """True when a worker with `tags` satisfies every requirement."""
    return set(requires) <= set(tags)


def unknown_entry(entry_id: str) -> QueueError:
    """The error for an entry id no backend knows."""
    return QueueError(f"no queue entry {entry_id!r}", hint="see `tether queue status` for the ids")


def read_local_log(path: Path, offset: int) -> LogChunk | None:
    """The log file's bytes from `offset` on, or None when this machine has no such file."""
    try:
        info = path.stat()
        if offset >= info.st_size:
            return LogChunk(b"", offset, info.st_mtime)
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return None
    return LogChunk(data, offset + len(data), info.st_mtime)


class QueueBackend(Protocol):
    """Storage of entries and their state transitions; see the module docstring."""

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Add entries atomically (all or none), in state queued."""

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id (or unique id prefix), None if unknown."""

    def entries(
        self, states: Iterable[str] | None = None, queues: Iterable[str] | None = None
    ) -> list[Entry]:
        """Entries, oldest first, optionally filtered by state and queue name."""

    def reserved_names(self, baseline: str) -> set[str]:
        """Experiment names taken by entries (not yet removed) under `baseline`."""

    def claim(self, queues: Sequence[str], worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        """Take the best claimable entry of `queues` that `tags` can run (None: nothing to do)."""

    def start(self, entry_id: str, worker: str, now: float, lease: float,
              tags: Sequence[str] = ()) -> Entry | None:
        """Claim this entry if it is claimable now and `tags` can run it (None otherwise)."""

    def live_workers(self, now: float) -> list[WorkerInfo]:
        """Workers whose announcement has not run out at `now`, by id."""

    def heartbeat(
        self, entry_id: str, attempt: int, worker: str, now: float, lease: float
    ) -> Heartbeat:
        """Renew the lease of an attempt this worker runs."""

    def finish(
        self, entry_id: str, attempt: int, worker: str, outcome: Outcome, now: float
    ) -> bool:
        """Report how an attempt ended; False if the worker no longer owned it."""

    def requeue_expired(self, now: float) -> list[Entry]:
        """Requeue (or fail, after MAX_LOST) running entries whose lease expired."""

    def request_kill(self, entry_id: str, now: float) -> Entry:
        """Cancel a waiting entry, or ask the worker of a running one to stop it."""

    def remove(self, entry_ids: Iterable[str]) -> list[Entry]:
        """Forget entries that are not running; returns those removed."""

    def retry(self, entry_id: str, *, name: str, run_id: str, now: float) -> Entry:
        """Queue a failed or cancelled entry again as a fresh run (new name and run id)."""

    def claim_occurrence(self, schedule: str, occurrence: float, worker: str,
                         now: float) -> bool:
        """True for exactly one caller per (schedule, occurrence), and never for an
        occurrence not newer than the schedule's last claimed one."""

    def note_fired(self, schedule: str, occurrence: float, result: str) -> None:
        """Record what the claimed occurrence enqueued (or why it could not)."""

    def fired(self) -> dict[str, Firing]:
        """The last claimed occurrence of each schedule, by schedule name."""

    def note_by_hand(self, schedule: str, worker: str, at: float, result: str) -> None:
        """Record a run of `schedule` by hand at `at` (the last one is kept)."""

    def by_hand(self) -> dict[str, Firing]:
        """The last run by hand of each schedule (`occurrence` is when it ran)."""

    def attempt_dir(self, entry_id: str, attempt: int) -> Path:
        """The local folder an attempt's logs go to."""

    def read_log(self, entry_id: str, attempt: int, offset: int = 0) -> LogChunk:
        """An attempt's combined output from byte `offset`."""

    def stats(self, now: float) -> QueueStats:
        """Counts for monitoring, computed now from the stored state (see `QueueStats`)."""

    def announce_worker(self, worker: str, queues: Sequence[str], now: float,
                        lease: float, tags: Sequence[str] = ()) -> None:
        """Say `worker` serves `queues` with `tags` until `now + lease` (renewed with its
        heartbeats)."""

    def retire_worker(self, worker: str) -> None:
        """Forget `worker`'s announcement: it stopped."""

    def close(self) -> None:
        """Release connections."""
