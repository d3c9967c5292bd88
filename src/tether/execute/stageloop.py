"""Run a plan's stages in order in one workspace: skip, restore from the run-cache, or
execute under supervision; save outputs and the lock file as each stage succeeds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from tether.cache.hashing import StatCache
from tether.errors import SpecError
from tether.execute.concurrency import StopOnSignal
from tether.execute.displace import Displaced
from tether.execute.events import RunEvent
from tether.execute.reuse import Reuse, stage_files
from tether.execute.stage import run_stage, stage_environment
from tether.execute.supervisor import SupervisorEvent
from tether.gitstore.fastrecord import start_status
from tether.gitstore.git import Git, GitJob
from tether.lockfile import StageLock, read_lock, write_lock
from tether.logs import bind
from tether.parameters import Params
from tether.plan import Plan, StageDecision, fingerprint
from tether.record.record import StageRecord
from tether.record.redact import Secrets
from tether.record.results import StageResults, read_stage_results
from tether.spec import Pipeline, Stage
from tether.status import FAILED, INTERRUPTED, NOT_RUN, SKIPPED, STALLED, SUCCESS, TIMEOUT

if TYPE_CHECKING:
    import threading

Emit = Callable[[RunEvent], None]


class StageLoop:
    """The stages of one run. After `run()`: each stage's record (`records`), the results
    of those that succeeded or were skipped (`results`), the outputs to remember in the
    run-cache once the run has its ref (`to_remember`), and `git status` of the
    workspace, started as soon as the last stage's process ended (`changes`)."""

    def __init__(
        self, *, git: Git, workspace: Path, pipeline: Pipeline, plan: Plan, params: Params,
        cache: StatCache, secrets: Secrets, run_id: str, name: str, run_dir: Path,
        echo: BinaryIO | None, emit: Emit, bare: bool, reuse_outputs: bool,
        keep_fds: tuple[int, ...] = (),
    ) -> None:
        self.git, self.ws, self.pipeline, self.plan = git, workspace, pipeline, plan
        self.params, self.cache, self.secrets = params, cache, secrets
        self.run_id, self.name, self.run_dir = run_id, name, run_dir
        self.echo, self.emit = echo, emit
        self.bare = bare  # a bare command: neither the lock nor the run-cache could reuse it
        self.reuse_outputs = reuse_outputs  # restore stages from the run-cache
        self.keep_fds = keep_fds  # inherited by every stage process (the run lock)
        self.lock = read_lock(workspace)
        self.reuse = Reuse(git.root, cache)
        self.records: list[StageRecord] = []
        self.results: dict[str, StageResults] = {}
        self.to_remember: list[tuple[str, dict[str, str]]] = []
        self.changes: GitJob | None = None

    def run(self) -> None:
        """Every stage of the plan in order; after one that did not succeed, or a stop
        signal, the rest are `not_run`."""
        decisions = self.plan.decisions
        last = max((i for i, d in enumerate(decisions) if d.action != "skip"), default=-1)
        stopped = False
        with StopOnSignal() as stop:
            for index, decision in enumerate(decisions):
                stage = self.pipeline.stages[decision.name]
                record = StageRecord(name=stage.name, status=SKIPPED, reasons=decision.reasons,
                                     cmd=list(stage.cmd))
                self.records.append(record)
                if stopped:
                    record.status = NOT_RUN
                elif decision.action == "skip":
                    self._skip(stage, record)
                else:
                    with bind(stage=stage.name):
                        self._execute(stage, record, decision, stop, last=index == last)
                    stopped = record.status != SUCCESS or stop.is_set()

    def _skip(self, stage: Stage, record: StageRecord) -> None:
        previous = self.lock.get(stage.name)
        if previous:
            record.fingerprint = previous.fingerprint
            record.deps, record.params, record.outs = previous.deps, previous.params, previous.outs
        try:
            self.results[stage.name] = read_stage_results(stage, self.ws)
        except SpecError as exc:
            record.error = str(exc)  # its results are unreadable: it contributes none
        self.emit(RunEvent("stage_skip", stage.name, "unchanged"))

    def _execute(
        self, stage: Stage, record: StageRecord, decision: StageDecision, stop: threading.Event,
        *, last: bool,
    ) -> None:
        restored: dict[str, Any] | None = None
        # Earlier outputs must not pass for this run's: move them out of the way.
        aside = Displaced(self.ws, stage_files(stage), self.run_dir / "displaced" / stage.name)
        try:
            fp = fingerprint(stage, self.ws, self.params, self.cache)
            record.fingerprint, record.deps, record.params = fp.digest, fp.deps, fp.params
            aside.move()
            if self.reuse_outputs:
                restored = self.reuse.restore(stage, fp.digest, self.ws)
            if restored is not None:
                record.status = SUCCESS
                record.restored_from = dict(restored.get("experiment") or {})
                self.emit(RunEvent("stage_restored", stage.name,
                                 str(record.restored_from.get("name", "an earlier run"))))
            else:
                self._run_process(stage, record, decision, stop)
            if last:
                self.changes = start_status(self.git, self.ws)
        except KeyboardInterrupt:
            record.status = INTERRUPTED
        except BaseException:
            if record.started_at is None and restored is None:
                aside.put_back()
            raise
        self._finish(stage, record, aside, restored=restored is not None)

    def _run_process(
        self, stage: Stage, record: StageRecord, decision: StageDecision, stop: threading.Event
    ) -> None:
        self.emit(RunEvent("stage_start", stage.name, "; ".join(decision.reasons)))
        variables = tether_vars(self.run_id, self.name, stage.name, self.ws, self.run_dir)
        run_stage(
            stage,
            workspace=self.ws,
            env=stage_environment(stage, os.environ, variables),
            log_path=self.run_dir / "logs" / f"{stage.name}.log",
            record=record,
            echo=self.echo,
            on_event=supervisor_events(self.emit, stage.name),
            stop=stop,
            secrets=self.secrets,
            keep_fds=self.keep_fds,
        )

    def _finish(
        self, stage: Stage, record: StageRecord, aside: Displaced, *, restored: bool
    ) -> None:
        """Read a finished stage's results; keep or put back what was moved aside; save
        a successful stage's outputs and lock entry."""
        if record.status == SUCCESS:
            try:
                self.results[stage.name] = read_stage_results(stage, self.ws)
            except SpecError as exc:
                # Exit 0 but unreadable results: the stage failed; the lock must not
                # say it is done, and the run is recorded all the same.
                record.status, record.error = FAILED, str(exc)
        if record.status == SUCCESS:
            aside.discard()
        elif record.started_at is None and not restored:
            aside.put_back()  # interrupted before it started: nothing was replaced
        self.emit(RunEvent("stage_end", stage.name, record.status, {"record": record}))
        if record.status == SUCCESS and not self.bare:
            self._save(stage, record, restored=restored)

    def _save(self, stage: Stage, record: StageRecord, *, restored: bool) -> None:
        record.outs = {out: self.cache.hash_path(self.ws / out) for out in stage.outs}
        if not restored:
            files = self.reuse.save_outputs(stage, self.ws, record.outs)
            self.to_remember.append((record.fingerprint or "", files))
        self.lock[stage.name] = StageLock(
            fingerprint=record.fingerprint or "",
            cmd=self.secrets.scrub_json(list(stage.cmd)),
            deps=record.deps,
            params=record.params,
            outs=record.outs,
        )
        write_lock(self.ws, self.lock)
        self.cache.flush()


def tether_vars(run_id: str, name: str, stage: str, ws: Path, run_dir: Path) -> dict[str, str]:
    """The TETHER_* variables a stage sees."""
    (run_dir / "steps").mkdir(exist_ok=True)
    (run_dir / "summary").mkdir(exist_ok=True)
    return {
        "TETHER_RUN_ID": run_id,
        "TETHER_EXP_NAME": name,
        "TETHER_STAGE": stage,
        "TETHER_ROOT": str(ws),
        "TETHER_PARAMS_FILE": str(run_dir / "params.json"),
        "TETHER_STEPS_FILE": str(run_dir / "steps" / f"{stage}.jsonl"),
        "TETHER_SUMMARY_FILE": str(run_dir / "summary" / f"{stage}.json"),
    }


def supervisor_events(emit: Emit, stage: str) -> Callable[[SupervisorEvent], None]:
    """The supervisor's events a user hears of, as run events."""

    def forward(event: SupervisorEvent) -> None:
        if event.kind == "expected_exceeded":
            emit(RunEvent("reminder", stage, event.detail))
        elif event.kind in (STALLED, TIMEOUT):
            emit(RunEvent(event.kind, stage, event.detail))

    return forward
