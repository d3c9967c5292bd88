"""Workers execute schedules: `Scheduler.tick(now)` fires what is due, exactly once.

Every worker (embedded or Celery) hands a `Scheduler`'s `tick` to its loop. A tick
reads the last claimed occurrence of each schedule from the queue state, computes
what is due (`schedules.due`), and claims it there (`QueueBackend.claim_occurrence`,
keyed by schedule and occurrence time): of any number of workers ticking at once,
one wins and enqueues it; the others do nothing. What it enqueued (or why it could
not) is noted next to the claim, for `tether schedule list`.

A `run:` occurrence queues an ordinary run of the main branch's current commit (the
same entries as `tether run --queue` with its arguments); a `repro:` occurrence
calls `tether.feedback.repro.enqueue_repro`; either goes to the schedule's `queue:`.
Each announces itself as the CloudEvent `dev.tether.schedule.fired`. A run by hand
(`run_now`) claims no occurrence: it is noted apart (`QueueBackend.note_by_hand`), so
the next occurrence, or a missed one to catch up, still fires. Editing `schedules:` takes
effect at a worker's next tick: the committed config is read again when it changed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import GitStateError, TetherError
from tether.feedback.schedules import Schedule, due, find_schedule, iso, load_schedules
from tether.layout import PROJECT_CONFIG, state_dir
from tether.queue.base import Entry, Firing, QueueBackend
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.feedback.watch import Feedback

FIRED_EVENT = "schedule.fired"
SCHEDULED = "scheduled"
BY_HAND = "by hand"
LOGGER = "tether.feedback.scheduler"


@struct(frozen=True)
class Fired:
    """One occurrence (or `tether schedule run`) and what it enqueued."""

    schedule: Schedule
    occurrence: float | None  # None: fired by hand
    worker: str
    at: float
    entries: list[Entry] = field(default_factory=list)
    result: str = ""
    error: str | None = None


@struct(frozen=True)
class ScheduleRow:
    """One line of `tether schedule list`."""

    schedule: Schedule
    next_at: float
    last: Firing | None  # the last claimed occurrence
    by_hand: Firing | None = None  # the last `tether schedule run` (occurrence: when)

    @property
    def latest(self) -> tuple[str, Firing] | None:
        """The most recent run, scheduled or by hand, and which (`scheduled`, `by hand`)."""
        runs = [(how, run) for how, run in ((SCHEDULED, self.last), (BY_HAND, self.by_hand))
                if run is not None]
        return max(runs, key=lambda pair: pair[1].claimed_at, default=None)


def worker_id() -> str:
    """`host:pid`, as the queue worker names itself."""
    return f"{socket.gethostname()}:{os.getpid()}"


def main_commit(root: Path) -> str:
    """The current commit of the main branch (`feedback.main`, else the remote's default
    branch, else main) in the repository at `root`: a local branch, else the remote's."""
    from tether.feedback.history import default_remote, load_settings, main_branch
    from tether.gitstore.git import Git

    git = Git(root)
    settings = load_settings(root)
    remote = default_remote(git, settings)
    branch = main_branch(git, settings, remote)
    found = git.resolve(f"refs/heads/{branch}") or (
        git.resolve(f"refs/remotes/{remote}/{branch}") if remote else None)
    if found is None:
        raise GitStateError(f"no branch {branch!r} here to run the schedule from",
                            hint="set feedback.main in .tether/config.yaml to the main branch")
    return found


def fire(root: Path, backend: QueueBackend, schedule: Schedule, *, now: float,
         occurrence: float | None = None, worker: str | None = None) -> Fired:
    """Enqueue what one occurrence of `schedule` does; errors are in the result, not raised."""
    worker = worker or worker_id()
    try:
        entries = _enqueue(root, backend, schedule, now, occurrence)
    except TetherError as exc:
        text = exc.message
        return Fired(schedule, occurrence, worker, now, result=f"failed: {text}", error=text)
    except Exception as exc:  # a worker's schedules never take the worker down
        from tether.logs import get_logger

        get_logger(LOGGER).exception("schedule_failed", schedule=schedule.name,
                                     occurrence=iso(occurrence) if occurrence else None)
        text = f"{type(exc).__name__}: {exc}"
        return Fired(schedule, occurrence, worker, now, result=f"failed: {text}", error=text)
    return Fired(schedule, occurrence, worker, now, entries=entries, result=_queued(entries))


def _queued(entries: list[Entry]) -> str:
    return "queued " + ", ".join(f"{e.id} {e.name}" for e in entries) if entries \
        else "queued nothing"


def _enqueue(root: Path, backend: QueueBackend, schedule: Schedule, now: float,
             occurrence: float | None) -> list[Entry]:
    origin = f"schedule:{schedule.name}"
    if schedule.repro is not None:
        from tether.feedback.repro import enqueue_repro

        entry = backend.get(enqueue_repro(root, schedule.repro, tolerances=None,
                                          origin=origin, queue=schedule.queue).id)
        return [entry] if entry is not None else []
    from tether.queue.client import QueueRequest, enqueue_commit

    run = schedule.run
    assert run is not None
    when = iso(occurrence) if occurrence is not None else "by hand"
    message = run.message or f"{origin} ({when})"
    request = QueueRequest(targets=list(run.targets), overrides=list(run.overrides),
                           message=message, force=run.force, queue=schedule.queue,
                           priority=run.priority, repeat=run.repeat)
    return enqueue_commit(root, main_commit(root), request, backend, now)


class Scheduler:
    """Fires the due occurrences of the project's schedules from one worker."""

    def __init__(self, root: Path, backend: QueueBackend, *,
                 on_fired: Callable[[Fired], None] | None = None,
                 on_problem: Callable[[str], None] | None = None,
                 worker: str | None = None) -> None:
        self.root = root
        self.backend = backend
        self.on_fired = on_fired
        self.on_problem = on_problem
        self.worker = worker or worker_id()
        self._stamp = self._config_stamp()
        self.schedules = load_schedules(root)  # a bad config stops the worker at start

    @property
    def tick_every(self) -> float:
        """How often to tick: every second, or 4 times per `every:` interval if shorter."""
        intervals = [s.every for s in self.schedules if s.every is not None]
        return max(0.1, min([1.0, *(i / 4 for i in intervals)]))

    def _config_stamp(self) -> tuple[float, int] | None:
        try:
            info = (state_dir(self.root) / PROJECT_CONFIG).stat()
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    def _reload(self) -> None:
        stamp = self._config_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.schedules = load_schedules(self.root)
        except TetherError as exc:  # keep the schedules it had; say so once per change
            if self.on_problem is not None:
                self.on_problem(f"schedules not reloaded: {exc}")

    def tick(self, now: float) -> list[Fired]:
        """Claim and fire every occurrence due at `now` (none if another worker did)."""
        self._reload()
        if not self.schedules:
            return []
        last = self.backend.fired()
        fired = []
        for schedule in self.schedules:
            previous = last.get(schedule.name)
            occurrence = due(schedule, previous.occurrence if previous else None, now)
            if occurrence is None:
                continue
            if not self.backend.claim_occurrence(schedule.name, occurrence, self.worker, now):
                continue
            result = fire(self.root, self.backend, schedule, now=now, occurrence=occurrence,
                          worker=self.worker)
            self.backend.note_fired(schedule.name, occurrence, result.result)
            fired.append(result)
            if self.on_fired is not None:
                self.on_fired(result)
        return fired


def run_now(root: Path, backend: QueueBackend, name: str, now: float | None = None) -> Fired:
    """`tether schedule run NAME`: enqueue what the schedule does, once, now (errors are
    raised, and nothing is noted). It claims no occurrence, so the next one (or a missed
    one to catch up) fires as usual; it is noted as the schedule's last run by hand."""
    schedule = find_schedule(load_schedules(root), name)
    now = time.time() if now is None else now
    entries = _enqueue(root, backend, schedule, now, None)
    fired = Fired(schedule, None, worker_id(), now, entries=entries, result=_queued(entries))
    backend.note_by_hand(schedule.name, fired.worker, now, fired.result)
    return fired


def list_schedules(root: Path, backend: QueueBackend,
                   now: float | None = None) -> list[ScheduleRow]:
    """Every schedule with its next occurrence, its last claimed one and its last run
    by hand."""
    now = time.time() if now is None else now
    schedules = load_schedules(root)
    fired = backend.fired() if schedules else {}
    by_hand = backend.by_hand() if schedules else {}
    return [ScheduleRow(s, s.next_after(now), fired.get(s.name), by_hand.get(s.name))
            for s in schedules]


def announce(feedback: Feedback | None, fired: Fired) -> None:
    """Publish `dev.tether.schedule.fired` for an occurrence that enqueued something."""
    if feedback is None or fired.error is not None:
        return
    settings = feedback.settings
    if not (settings.sinks or settings.events_file):
        return
    from tether.feedback.events import append_local, new_event, repository_source

    schedule = fired.schedule
    data = {
        "schedule": schedule.name, "spec": schedule.spec, "action": schedule.action,
        "what": schedule.what, "occurrence": iso(fired.occurrence) if fired.occurrence
        is not None else None, "worker": fired.worker, "host": fired.worker.rsplit(":", 1)[0],
        "entries": [_entry_summary(e) for e in fired.entries],
    }
    event = new_event(FIRED_EVENT, source=repository_source(feedback.root),
                      subject=f"schedules/{schedule.name}", data=data, sequence=1, at=fired.at)
    if settings.events_file:
        append_local(feedback.root, event)
    if settings.sinks:
        feedback.outbox.publish(event, settings.sinks)


def _entry_summary(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name, "baseline": entry.baseline,
            "run_id": entry.run_id, "queue": entry.queue}
