"""The listeners that feed `Feedback` from where runs happen: `tether run` (`RunListener`)
and queue workers (`QueueListener`), plus the one-shot notices of `tether gate` and
`tether notify test`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tether.feedback.notify import (
    FAILED,
    INTERRUPTED,
    NOT_REPRODUCED,
    REMINDER,
    FeedbackSettings,
    Notice,
    RunFacts,
    compose,
)
from tether.feedback.watch import Feedback, facts_of, read_recorded, recorded_tail, with_facts
from tether.layout import runs_dir
from tether.logs import bind
from tether.status import STALLED, SUCCESS

if TYPE_CHECKING:
    from tether.execute.events import RunEvent
    from tether.queue.base import Entry, QueueEvent
    from tether.record.record import RunRecord


class RunListener:
    """`tether run`'s side: its on_event hook, and the end of the run."""

    def __init__(self, feedback: Feedback, root: Path,
                 forward: Callable[[RunEvent], None] | None = None) -> None:
        self.feedback = feedback
        self.root = root
        self.forward = forward
        self.key = ""

    def __call__(self, event: RunEvent) -> None:
        if self.forward is not None:
            self.forward(event)
        with contextlib.suppress(Exception):  # feedback never breaks a run
            self._handle(event)

    def _handle(self, event: RunEvent) -> None:
        feedback, kind = self.feedback, event.kind
        if kind == "started":
            data = event.data
            self.key = str(data.get("run_id") or "")
            run_dir = runs_dir(Path(data.get("state_root") or self.root)) / self.key
            feedback.run_started(
                self.key,
                RunFacts(name=str(data.get("name") or event.detail), run_id=self.key,
                         baseline=str(data.get("baseline") or ""),
                         branch=data.get("branch"), host=_host()),
                expected=data.get("expected") or {},
                log_path=lambda stage: run_dir / "logs" / f"{stage}.log")
        elif kind == "stage_start" and event.stage:
            feedback.stage_started(self.key, event.stage)
        elif kind == "stage_end" and event.stage:
            record = event.data.get("record")
            feedback.stage_finished(self.key, event.stage, event.detail,
                                    getattr(record, "duration", None))
        elif kind == "reminder" and event.stage:
            feedback.reminded(self.key, event.stage, event.detail)
        elif kind == STALLED and event.stage:
            feedback.stalled(self.key, event.stage, event.detail)

    def ended(self, record: RunRecord | None, ref: str | None, commit: str | None) -> None:
        if record is None:
            return
        try:
            facts = facts_of(record, ref)
        except Exception:
            return
        # After the run's own context ended: its delivery lines still carry it.
        with bind(run_id=facts.run_id or None, exp=facts.name or None), \
                contextlib.suppress(Exception):
            log = ""
            if record.status != SUCCESS and commit and self.feedback.settings.urls:
                log = recorded_tail(self.root, commit, facts.stage)
            self.feedback.run_ended(self.key or record.id, facts, log)


def _stage_log(attempt_log: Path | None, entry: Entry, stage: str) -> Path | None:
    """What a queued run's reminder quotes: the stage's own log (the attempt's child keeps
    its run state in the attempt's folder), else the attempt's log, where the stages'
    output is interleaved with the child's log lines."""
    if attempt_log is None:
        return None
    own = runs_dir(attempt_log.parent) / entry.run_id / "logs" / f"{stage}.log"
    return own if entry.run_id and own.is_file() else attempt_log


class QueueListener:
    """`tether worker`'s side: the queue's lifecycle events."""

    def __init__(self, feedback: Feedback, root: Path,
                 log_path: Callable[[Entry], Path | None] = lambda entry: None) -> None:
        self.feedback = feedback
        self.root = root
        self.log_path = log_path

    def __call__(self, event: QueueEvent) -> None:
        entry = event.entry
        # A backend emits "queued" and "started" before the worker binds the attempt's
        # context: the delivery lines about this entry carry it all the same.
        with bind(run_id=entry.run_id or None, exp=entry.name or None, entry=entry.id,
                  queue=entry.queue), contextlib.suppress(Exception):  # nor a worker
            self._handle(event)

    def _handle(self, event: QueueEvent) -> None:
        from tether.queue.base import CANCELLED, DONE, MAX_LOST, QUEUED
        from tether.queue.base import FAILED as ENTRY_FAILED

        feedback, entry, kind = self.feedback, event.entry, event.kind
        key = entry.run_id or entry.id
        facts = RunFacts(name=entry.name, run_id=entry.run_id, baseline=entry.baseline,
                         host=(entry.worker or "").partition(":")[0] or _host())
        if kind in ("queued", QUEUED) and event.detail != "retry":
            feedback.queued(key, facts)
        elif kind == "started":
            feedback.run_started(
                key, facts, log_path=lambda stage: _stage_log(self.log_path(entry), entry, stage))
        elif kind == "stage":
            what, _, stage = event.detail.partition(" ")
            stage = stage.strip()
            if what == "started":  # the run itself started: its stages' expected durations
                feedback.expect(key, event.data.get("expected") or {})
            elif what == "stage_start" and stage:
                feedback.stage_started(key, stage)
            elif what == "stage_end" and stage:
                feedback.stage_finished(key, stage, "")
        elif kind == REMINDER:
            stage, _, detail = event.detail.partition(": ")
            feedback.reminded(key, stage, detail)
        elif kind == STALLED:
            stage, _, detail = event.detail.partition(": ")
            feedback.stalled(key, stage, detail)
        elif kind in (DONE, ENTRY_FAILED, CANCELLED):
            if entry.result_ref:
                record, commit = read_recorded(self.root, entry.result_ref)
                if record is not None:
                    facts = facts_of(record, entry.result_ref)
                    log = recorded_tail(self.root, commit, facts.stage) \
                        if record.status != SUCCESS and feedback.settings.urls else ""
                    feedback.run_ended(key, facts, log)
                    if entry.reproduces is not None:
                        publish_reproduction(feedback, record, entry.result_ref)
                    return
            if kind == ENTRY_FAILED and entry.lost >= MAX_LOST:
                feedback.lost(with_facts(facts, status="lost"), entry.error or "")
            elif kind != DONE:
                status = INTERRUPTED if kind == CANCELLED else FAILED
                feedback.run_ended(key, with_facts(facts, status=status), entry.error or "")


def _host() -> str:
    import os

    return os.uname().nodename  # what the record's environment says; no socket import


def _once(root: Path, wait: float, action: Callable[[Feedback], None]) -> None:
    """Do `action` with the project's feedback (if anyone listens); it never raises, and
    delivery gets at most `wait` seconds."""
    from tether.feedback.notify import load_settings

    settings = load_settings(root)
    if not settings.active:
        return
    feedback = Feedback(root, settings)
    try:
        action(feedback)
    except Exception:
        pass  # telling people never fails the command
    finally:
        feedback.close(wait)


def notify_regressed(root: Path, ref: str, detail: str, wait: float = 3.0) -> None:
    """`tether gate` found a regression: notify it and publish `dev.tether.run.regressed`."""

    _once(root, wait, lambda feedback: send_regressed(feedback, root, ref, detail))


def send_regressed(feedback: Feedback, root: Path, ref: str, detail: str) -> None:
    """Notify the regression of the experiment at `ref` through `feedback` (never raises)."""
    try:
        record, _ = read_recorded(root, ref)
        if record is not None:
            feedback.regressed(with_facts(facts_of(record, ref), status="regressed"), detail)
    except Exception:
        pass  # telling people never fails the command


def publish_reproduction(feedback: Feedback, record: RunRecord, ref: str) -> None:
    """Judge the reproduction `record` (at `ref`) against its original and publish the
    verdict: `dev.tether.run.reproduced` or `.not_reproduced`, and the `not-reproduced`
    notification when it ran and differs (a failed run has its own `failed` one)."""
    from tether.feedback.reproverdict import REPRODUCED, RUN_FAILED, describe, judge_recorded

    verdict, _ = judge_recorded(feedback.root, ref)
    facts = facts_of(record, ref)
    kind = "reproduced" if verdict.verdict == REPRODUCED else "not_reproduced"
    summary = {"verdict": verdict.verdict, "original": verdict.original,
               "metrics": [m for m in verdict.to_json()["metrics"] if m["verdict"] != "same"],
               "environment": verdict.environment, "inputs": verdict.inputs}
    feedback.event(kind, record.id, facts, {"reproduction": summary})
    if verdict.verdict not in (REPRODUCED, RUN_FAILED):
        feedback.send(compose(NOT_REPRODUCED, with_facts(facts, status="not reproduced"),
                              detail=describe(verdict),
                              notice_id=f"{record.id}:{NOT_REPRODUCED}"))


def announce_queued(root: Path, entry: Entry, wait: float = 3.0) -> None:
    """`dev.tether.run.queued` for an entry queued by library code (`enqueue_repro`)."""
    facts = RunFacts(name=entry.name, run_id=entry.run_id, baseline=entry.baseline)
    _once(root, wait, lambda feedback: feedback.queued(entry.run_id or entry.id, facts))


def notify_reproduction(root: Path, record: RunRecord, ref: str, wait: float = 3.0) -> None:
    """`tether repro` ran a reproduction here: publish its verdict (if anyone listens)."""
    _once(root, wait, lambda feedback: publish_reproduction(feedback, record, ref))


def notice_for_test(settings: FeedbackSettings) -> Notice:
    facts = RunFacts(name="notify-test", run_id=f"test-{time.time():.0f}", host=_host(),
                     status="test")
    body = compose("test", facts, detail="If you read this, tether can reach you.").body
    return Notice(id=f"{facts.run_id}:test", event="test", title="tether: test notification",
                  body=body, severity="info")
