"""From what runs report to who hears of it: notifications, reminders, CloudEvents.

`Feedback` is one process's listener. `tether run` feeds it the runner's
`RunEvent`s (`on_run_event`) and its result (`run_ended`); `tether worker` feeds it
the queue's `QueueEvent`s (`on_queue_event`), embedded or Celery alike. It never
raises into the run: sending happens on the delivery lanes (`delivery.Outbox`).

Reminders: a stage's `expected` duration makes the supervisor report once; this
module then reminds again at 2x and 4x that time while the stage still runs (at
most 3 reminders). A stage without `expected` gets a learned one: the p90 of its
last successful durations x 1.5, from at least `LEARN_MIN_RUNS` recorded runs.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.feedback.notify import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    LOST,
    REGRESSED,
    REMINDER,
    SUCCEEDED,
    FeedbackSettings,
    Notice,
    RunFacts,
    compose,
    read_tail,
    tail,
)
from tether.layout import exp_ref
from tether.status import STALLED, SUCCESS, TIMEOUT

if TYPE_CHECKING:
    from tether.feedback.delivery import Outbox
    from tether.record.record import RunRecord
    from tether.record.redact import Secrets

MAX_REMINDERS = 3
LEARN_MIN_RUNS = 5
LEARN_FACTOR = 1.5
LEARN_WINDOW = 20  # successful durations considered, newest first
LEARN_AFTER = 1.0  # seconds a stage runs before its history is read
_EXPECTED = re.compile(r"expected ([0-9.]+)s")
_ENDED = {SUCCESS: SUCCEEDED, FAILED: FAILED, STALLED: STALLED, TIMEOUT: TIMEOUT,
          INTERRUPTED: INTERRUPTED}


def p90(values: list[float]) -> float:
    """The 90th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n)
    return ordered[rank - 1]


def learned_expected(durations: list[float]) -> float | None:
    """The learned `expected` of a stage from its last successful durations."""
    if len(durations) < LEARN_MIN_RUNS:
        return None
    return p90(durations) * LEARN_FACTOR


class _Run:
    def __init__(self, key: str, facts: RunFacts, log_path: Callable[[str], Path | None]) -> None:
        self.key = key
        self.facts = facts
        self.log_path = log_path
        self.expected: dict[str, float | None] = {}
        self.running: dict[str, int] = {}  # stage -> generation (a new start cancels timers)
        self.started: dict[str, float] = {}  # stage -> monotonic start
        self.generations: dict[str, int] = {}
        self.reminded: dict[str, int] = {}
        self.timers: list[threading.Timer] = []


class Feedback:
    """Notifications and lifecycle events for the runs of one process."""

    def __init__(self, root: Path, settings: FeedbackSettings, *, outbox: Outbox | None = None,
                 history: Callable[[], dict[str, list[float]]] | None = None) -> None:
        self.root = root
        self.settings = settings
        self._outbox = outbox
        self._outbox_lock = threading.Lock()
        self._history_source = history
        self._history: dict[str, list[float]] | None = None
        self._history_ready = threading.Event()
        self._history_started = False
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._source: str | None = None
        self._sequencer: Any = None
        self._secrets: Secrets | None = None

    # -- sending ---------------------------------------------------------

    @property
    def outbox(self) -> Outbox:
        with self._outbox_lock:  # reminders send from timer threads
            if self._outbox is None:
                from tether.feedback.delivery import Outbox

                self._outbox = Outbox(self.root)
            return self._outbox

    def send(self, notice: Notice) -> None:
        if self.settings.wants(notice.event):
            self.outbox.notify(notice, self.settings.urls)

    def event(self, kind: str, run_key: str, facts: RunFacts, data: dict[str, Any] | None = None,
              at: float | None = None) -> None:
        """Publish the CloudEvent `dev.tether.run.<kind>` of run `run_key`."""
        settings = self.settings
        if not (settings.sinks or settings.events_file):
            return
        from tether.feedback.events import Sequencer, append_local, new_event, repository_source

        with self._lock:
            if self._source is None:
                self._source = repository_source(self.root)
                self._sequencer = Sequencer()
        subject = facts.ref or (exp_ref(facts.baseline, facts.name) if facts.baseline
                                else facts.name)
        event = new_event(kind, source=self._source, subject=subject,
                          data={**facts.to_json(), **(data or {})},
                          sequence=self._sequencer.next(run_key), at=at)
        if settings.events_file:
            append_local(self.root, event)
        if settings.sinks:
            self.outbox.publish(event, settings.sinks)

    def close(self, wait: float) -> None:
        """Cancel reminders; give delivery at most `wait` seconds."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._cancel(run)
        if self._outbox is not None:
            self._outbox.close(wait)

    # -- the life of a run -----------------------------------------------

    def run_started(self, key: str, facts: RunFacts, *,
                    expected: dict[str, float | None] | None = None,
                    log_path: Callable[[str], Path | None] = lambda stage: None) -> None:
        run = _Run(key, facts, log_path)
        run.expected = dict(expected or {})
        with self._lock:
            self._runs[key] = run
        self.event("started", key, facts)

    def expect(self, key: str, expected: dict[str, float | None]) -> None:
        """Run `key`'s stages' `expected` durations, as a queued run's child reports them."""
        run = self._runs.get(key)
        if run is not None:
            with self._lock:
                run.expected = dict(expected)

    def stage_started(self, key: str, stage: str) -> None:
        run = self._runs.get(key)
        if run is None:
            return
        with self._lock:
            generation = run.generations.get(stage, 0) + 1
            run.generations[stage] = run.running[stage] = generation
            run.started[stage] = time.monotonic()
            run.reminded[stage] = 0
        self.event("stage.started", key, run.facts, {"stage": stage})
        if self.settings.wants(REMINDER) and run.expected.get(stage) is None and \
                stage in run.expected:
            self._learn_then_schedule(run, stage, generation)

    def stage_finished(self, key: str, stage: str, status: str,
                       duration: float | None = None) -> None:
        run = self._runs.get(key)
        if run is None:
            return
        with self._lock:
            run.running.pop(stage, None)
        self.event("stage.finished", key, run.facts,
                   {"stage": stage, "stage_status": status, "stage_duration": duration})

    def reminded(self, key: str, stage: str, detail: str) -> None:
        """The supervisor's reminder: `stage` runs past its `expected` duration."""
        run = self._runs.get(key)
        if run is None:
            return
        match = _EXPECTED.search(detail)
        expected = float(match.group(1)) if match else run.expected.get(stage)
        self._remind(run, stage, run.running.get(stage, 0), detail)
        if expected and self.settings.wants(REMINDER):
            self._schedule(run, stage, run.running.get(stage, 0), expected, "")

    def stalled(self, key: str, stage: str, detail: str) -> None:
        run = self._runs.get(key)
        if run is not None:
            self.event("stalled", key, run.facts, {"stage": stage, "detail": detail})

    def run_ended(self, key: str, facts: RunFacts, log_tail: str = "") -> None:
        """The run is recorded: notify its outcome, publish finished or failed."""
        with self._lock:
            run = self._runs.pop(key, None)
        if run is not None:
            self._cancel(run)
        outcome = _ENDED.get(facts.status, FAILED)
        self.event("finished" if facts.status == SUCCESS else "failed", key, facts)
        detail = f"Stage {facts.stage} {facts.status}." if facts.stage and \
            facts.status != SUCCESS else ""
        for event in (outcome, FINISHED):
            if self.settings.wants(event):
                self.send(compose(event, facts, detail=detail, log_tail=log_tail))

    def queued(self, key: str, facts: RunFacts) -> None:
        self.event("queued", key, facts)

    def lost(self, facts: RunFacts, detail: str) -> None:
        self.send(compose(LOST, facts, detail=detail))
        self.event("failed", facts.run_id or facts.name, facts, {"detail": detail})

    def regressed(self, facts: RunFacts, detail: str) -> None:
        self.send(compose(REGRESSED, facts, detail=detail))
        self.event("regressed", facts.run_id or facts.name, facts, {"detail": detail})

    # -- reminders -------------------------------------------------------

    def _remind(self, run: _Run, stage: str, generation: int, detail: str) -> None:
        with self._lock:
            if run.running.get(stage) != generation or run.key not in self._runs:
                return  # the stage ended meanwhile
            count = run.reminded.get(stage, 0) + 1
            if count > MAX_REMINDERS:
                return
            run.reminded[stage] = count
        self.event("reminder", run.key, run.facts,
                   {"stage": stage, "detail": detail, "reminder": count})
        path = run.log_path(stage)
        log = self._scrub(read_tail(path)) if path is not None else ""
        facts = with_facts(run.facts, stage=stage)
        self.send(compose(REMINDER, facts, detail=f"Reminder {count} of {MAX_REMINDERS}: "
                          f"{detail}", log_tail=log,
                          notice_id=f"{run.facts.run_id}:reminder:{stage}:{generation}:{count}"))

    def _schedule(self, run: _Run, stage: str, generation: int, expected: float,
                  learned: str) -> None:
        """The reminders not sent yet, at `expected` x 1, 2, 4 after the stage started."""
        started = run.started.get(stage, time.monotonic())
        now = time.monotonic()
        first = run.reminded.get(stage, 0) + 1
        for count in range(first, MAX_REMINDERS + 1):
            # At expected x 1, 2, 4; ones already due are spaced `expected` apart from now.
            delay = max(started + expected * 2 ** (count - 1) - now,
                        expected * (2 ** (count - first) - 1))
            elapsed = now + delay - started
            detail = f"still running after {elapsed:.0f}s, expected {expected:g}s{learned}"
            timer = threading.Timer(delay, self._remind, (run, stage, generation, detail))
            timer.daemon = True
            with self._lock:
                run.timers.append(timer)
            timer.start()

    def _learn_then_schedule(self, run: _Run, stage: str, generation: int) -> None:
        """Learn the stage's expected duration, if it still runs after `LEARN_AFTER`
        seconds (the history costs a read of recent records: short stages skip it)."""

        def work() -> None:
            with self._lock:
                if run.running.get(stage) != generation or run.key not in self._runs:
                    return
            durations = self.history().get(stage, [])
            threshold = learned_expected(durations)
            if threshold is None:
                return
            learned = (f" (learned: p90 of the last {len(durations)} successful runs "
                       f"{p90(durations):.1f}s x {LEARN_FACTOR:g})")
            self._schedule(run, stage, generation, threshold, learned)

        timer = threading.Timer(LEARN_AFTER, work)
        timer.daemon = True
        with self._lock:
            run.timers.append(timer)
        timer.start()

    def history(self) -> dict[str, list[float]]:
        """Successful durations per stage, newest first (computed once)."""
        with self._lock:
            start = not self._history_started
            self._history_started = True
        if start:
            try:
                source = self._history_source or (lambda: stage_durations(self.root))
                self._history = source()
            except Exception:
                self._history = {}
            self._history_ready.set()
        self._history_ready.wait()
        return self._history or {}

    def _cancel(self, run: _Run) -> None:
        with self._lock:
            timers, run.timers = run.timers, []
            run.running.clear()
        for timer in timers:
            timer.cancel()

    def _scrub(self, text: str) -> str:
        from tether.urls import mask_urls

        if self._secrets is None:
            from tether.record.redact import discover

            self._secrets = discover(root=self.root)
        return mask_urls(self._secrets.scrub(text))


def with_facts(facts: RunFacts, **changes: Any) -> RunFacts:
    from tether.structs import replace

    return replace(facts, **changes)


# ------------------------------------------------------------------ reading records


def stage_durations(root: Path, window: int = LEARN_WINDOW,
                    newest: int = 200) -> dict[str, list[float]]:
    """Per stage, the durations of its last `window` successful executions (not
    restored, not skipped) in the newest `newest` recorded experiments."""
    from tether.experiments.index import refresh
    from tether.experiments.resolve import with_records
    from tether.gitstore.experiments import ExperimentRef
    from tether.gitstore.git import Git

    git = Git(root)
    index = refresh(git)
    try:
        rows = sorted(index.experiments(), key=lambda e: e.created_at, reverse=True)[:newest]
    finally:
        index.close()
    refs = [ExperimentRef(r.ref, r.baseline, r.name, r.commit) for r in rows]
    found: dict[str, list[float]] = {}
    for exp in with_records(git, refs):
        record = exp.record
        if record is None:
            continue
        for stage in record.stages:
            if stage.status == SUCCESS and stage.duration is not None and \
                    not stage.restored_from and len(found.setdefault(stage.name, [])) < window:
                found[stage.name].append(stage.duration)
    return found


def facts_of(record: RunRecord, ref: str | None) -> RunFacts:
    """What messages and events say about a recorded run."""
    stage = next((s for s in record.stages if s.status == record.status), None)
    if record.status == SUCCESS:
        stage = None
    host = record.environment.get("hostname") if isinstance(record.environment, dict) else ""
    return RunFacts(name=record.name, run_id=record.id, baseline=record.baseline,
                    branch=record.branch, host=str(host or ""), status=record.status,
                    stage=stage.name if stage else None,
                    exit_code=stage.exit_code if stage else record.exit_code,
                    duration=record.duration, ref=ref)


def recorded_tail(root: Path, commit: str, stage: str | None) -> str:
    """The last lines of `stage`'s log stored in the experiment `commit` (scrubbed)."""
    if not stage:
        return ""
    from tether.gitstore.git import Git
    from tether.layout import RECORD_LOGS_DIR

    proc = Git(root).run("cat-file", "blob", f"{commit}:{RECORD_LOGS_DIR}/{stage}.log",
                         check=False)
    return tail(proc.stdout.decode(errors="replace")) if proc.returncode == 0 else ""


def read_recorded(root: Path, ref: str) -> tuple[RunRecord | None, str]:
    """The record of experiment `ref` and its commit."""
    from tether.gitstore.git import Git
    from tether.layout import RECORD_PATH
    from tether.record.record import load_record

    git = Git(root)
    commit = git.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if commit.returncode != 0:
        return None, ""
    sha = commit.stdout.decode().strip()
    blob = git.run("cat-file", "blob", f"{sha}:{RECORD_PATH}", check=False)
    record, _ = load_record(blob.stdout if blob.returncode == 0 else None)
    return record, sha


# ------------------------------------------------------------------ adapters
