"""`tether run`: plan, execute under supervision, and record one experiment."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from tether.atomic import write_text
from tether.cache.hashing import StatCache
from tether.cache.runcache import RunCache
from tether.cache.tracked import external_deps, ignore_outputs
from tether.errors import ExperimentError, UsageError
from tether.execute.assemble import Assembled, RunFields, assemble_record
from tether.execute.commit import commit_run
from tether.execute.concurrency import Background
from tether.execute.events import RunEvent
from tether.execute.facts import RunFacts
from tether.execute.runlock import RunLock
from tether.execute.stageloop import StageLoop
from tether.execute.workspace import Workspace, in_place, temporary_worktree
from tether.gitstore import experiments as exps
from tether.gitstore.fastrecord import start_status
from tether.gitstore.git import Git, GitJob, repo_state
from tether.gitstore.names import generate_name, validate_name
from tether.ids import new_run_id
from tether.layout import LONG_STEP_SERIES, RUN_INFO, runs_dir, tmp_dir
from tether.lockfile import read_lock
from tether.logs import bind
from tether.parameters import (
    Params,
    apply_overrides,
    load_params,
    parse_override,
    remember_params,
    render_params_file,
)
from tether.plan import Plan, make_plan
from tether.project import ensure_state_dir, load_project_pipeline
from tether.record.environment import capture_environment
from tether.record.record import RunRecord
from tether.record.redact import Secrets, discover
from tether.spec import Pipeline
from tether.status import CONTRIBUTING, PLANNED
from tether.structs import field, struct

__all__ = ["RunContext", "RunEvent", "RunOptions", "RunResult", "render_plan", "run"]


@struct
class RunOptions:
    """What the user asks of a run (`tether run`'s arguments)."""

    targets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    name: str | None = None
    message: str = ""
    force: bool = False
    dry: bool = False
    temp: bool = False
    command: list[str] | None = None
    echo: BinaryIO | None = None
    on_event: Callable[[RunEvent], None] | None = None
    argv: list[str] = field(default_factory=list)
    command_limits: dict[str, Any] = field(default_factory=dict)  # timeouts, metrics, plots
    no_run_cache: bool = False
    # In place: wait for another in-place run of the work tree instead of BusyError.
    wait: bool = False
    # Bytes of a data source's download, for the CLI's progress bar: (done, total).
    progress: Callable[[int, int], None] | None = None


@struct
class RunContext:
    """Where a run stands, when its caller knows better than the work tree."""

    # Set by queue workers: record against this baseline (the user's HEAD when the
    # entry was queued) with this run id, though the worktree's HEAD is a snapshot.
    baseline: str | None = None
    run_id: str | None = None
    # Where `.tether/runs/<run-id>` goes (default: the project root); a queue worker
    # running in a throwaway worktree points it at a folder that outlives the run.
    state_root: Path | None = None
    # The run's git questions, when the caller started them early (`tether run` does,
    # before importing this module); else `run` starts them.
    facts: RunFacts | None = None
    # `tether repro`: the experiment this run reproduces (the record's `reproduces`).
    reproduces: dict[str, Any] | None = None


@struct
class RunResult:
    plan: Plan
    record: RunRecord | None = None
    ref: exps.ExperimentRef | None = None

    @property
    def status(self) -> str:
        return self.record.status if self.record else PLANNED


def run(cwd: Path, options: RunOptions, context: RunContext | None = None) -> RunResult:
    """Plan the pipeline (or bare command) and, unless dry, run and record it."""
    context = context or RunContext()
    facts = None if options.dry else context.facts or RunFacts(cwd, context.baseline)
    try:
        if options.command is not None and options.targets:
            raise UsageError("give either stage names or `-- COMMAND`, not both")
        return _run(cwd, options, context, facts)
    finally:
        if facts is not None:
            facts.close()


def _run(
    cwd: Path, options: RunOptions, context: RunContext, facts: RunFacts | None
) -> RunResult:
    state = facts.state if facts else repo_state(cwd)
    root = state.root
    git = Git(root)
    baseline = context.baseline or state.head
    ensure_state_dir(root)  # caches live there; it ignores itself, so git status stays clean
    emit = options.on_event or (lambda event: None)
    overrides = [parse_override(text) for text in options.overrides]
    if options.name is not None:
        validate_name(options.name)
        taken = facts.taken_names() if facts else exps.taken_names(git, baseline)
        if options.name in taken:
            raise ExperimentError(
                f"experiment name {options.name!r} is already used under baseline {baseline[:10]}",
                hint="choose another name with -n, or remove the old experiment",
            )
    # In place, this run owns the work tree's params and outputs until it is recorded.
    run_lock = RunLock(root) if facts is not None and not options.temp else None
    if run_lock is not None:
        run_lock.acquire(
            wait=options.wait, on_wait=lambda holder: emit(RunEvent("waiting", None, holder))
        )
    try:
        return _plan_and_run(cwd, git, options, context, facts, overrides, run_lock)
    finally:
        if run_lock is not None:
            run_lock.release()


def _plan_and_run(
    cwd: Path, git: Git, options: RunOptions, context: RunContext, facts: RunFacts | None,
    overrides: list[Any], run_lock: RunLock | None,
) -> RunResult:
    root = git.root
    emit = options.on_event or (lambda event: None)
    pipeline = load_project_pipeline(root, options.command, options.command_limits, cwd)
    order = pipeline.order(options.targets or None)
    # Built once: every value this run stores passes through it.
    secrets = discover(os.environ, root=root,
                       more_envs=[stage.env for stage in pipeline.stages.values()])

    # Validate everything against the user's workspace before creating anything.
    params = _load_effective_params(root, pipeline, overrides)
    cache = StatCache(None if options.dry else tmp_dir(root) / "statcache.db")
    try:
        bare = options.command is not None
        run_cache = None if options.no_run_cache or options.force or bare else RunCache(root)
        always = set(pipeline.stages) if bare else set()
        if facts is not None and pipeline.data:
            _bring_sources(root, root, pipeline, order, cache, options)
        plan = make_plan(pipeline, order, root, params, read_lock(root), cache,
                         force=options.force, run_cache=run_cache, secrets=secrets,
                         always=always)
        if facts is None:
            return RunResult(plan=plan)
        ensure_state_dir(root)
        started = time.time()
        run_id = context.run_id or new_run_id(started)
        workspace = (temporary_worktree(git, run_id, [d for _, d in external_deps(pipeline, order)],
                                        ident=facts.committer_ident())
                     if options.temp else in_place(root))
        try:
            if workspace.temporary:
                if pipeline.data:
                    _bring_sources(workspace.path, root, pipeline, order, cache, options)
                params = _load_effective_params(workspace.path, pipeline, overrides)
                plan = make_plan(
                    pipeline, order, workspace.path, params, read_lock(workspace.path), cache,
                    force=options.force, run_cache=run_cache, secrets=secrets,
                    always=always,
                )
            for warning in workspace.warnings:
                emit(RunEvent("warning", None, warning))
            emit(RunEvent("plan", None, "", {"plan": plan}))
            if run_lock is not None:
                run_lock.update(run_id=run_id)
            run = _Run(git=git, workspace=workspace, pipeline=pipeline, plan=plan,
                       params=params, cache=cache, options=options, context=context,
                       facts=facts, run_id=run_id, started=started, secrets=secrets)
            return _execute_and_record(run, run_lock)
        finally:
            workspace.cleanup(git)
    finally:
        cache.close()


def _bring_sources(ws: Path, root: Path, pipeline: Pipeline, order: list[str],
                   cache: StatCache, options: RunOptions) -> None:
    """Put the data sources the stages need in place in `ws` (pins from `root`'s lock)."""
    from tether.execute.sources import ensure_sources, needed_sources, project_access
    from tether.lockfile import read_pins, write_pins
    from tether.project import object_store

    sources = needed_sources(pipeline, order)
    if not sources:
        return
    if ws != root and read_pins(ws) != read_pins(root):
        write_pins(ws, {**read_pins(ws), **read_pins(root)})
    emit = options.on_event or (lambda event: None)
    done = ensure_sources(ws, sources, object_store(root), cache,
                          project_access(root, lambda name: options.progress))
    for name, how in done:
        emit(RunEvent("data", None, f"{name}: {how}"))


def _load_effective_params(root: Path, pipeline: Pipeline, overrides: list[Any]) -> Params:
    files = {ref.file for stage in pipeline.stages.values() for ref in stage.params}
    files |= {ov.file for ov in overrides if not ov.allow_new}
    params = load_params(root, files, tmp_dir(root) / "params-cache.json")
    apply_overrides(params, overrides)
    return params


@struct
class _Run:
    """One planned run, about to execute."""

    git: Git
    workspace: Workspace
    pipeline: Pipeline
    plan: Plan
    params: Params
    cache: StatCache
    options: RunOptions
    context: RunContext
    facts: RunFacts
    run_id: str
    started: float
    secrets: Secrets


def _execute_and_record(run: _Run, run_lock: RunLock | None = None) -> RunResult:
    """Run the stages, put the record together, commit it and remember the outputs."""
    taken, code = run.facts.taken_names(), run.facts.code()
    name = run.options.name or generate_name(taken)
    if run_lock is not None:
        run_lock.update(name=name)
    with bind(run_id=run.run_id, exp=name):  # every log line of this run carries them
        return _run_named(run, name, taken, code, run_lock)


def _run_named(run: _Run, name: str, taken: set[str], code: dict[str, Any],
               run_lock: RunLock | None) -> RunResult:
    options, facts, git = run.options, run.facts, run.git
    emit = options.on_event or (lambda event: None)
    run_dir = runs_dir(run.context.state_root or git.root) / run.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    # Who listens (notifications, lifecycle events) learns which run this is.
    emit(RunEvent("started", None, name, {
        "run_id": run.run_id, "name": name, "baseline": facts.baseline,
        "branch": facts.state.branch, "state_root": str(run.context.state_root or git.root),
        "expected": {d.name: run.pipeline.stages[d.name].expected
                     for d in run.plan.decisions if d.action == "run"},
    }))
    # Who runs here, for `tether view` to find runs that hold no in-place lock (--temp,
    # queued): the folder is theirs until `record.json` appears.
    write_text(run_dir / RUN_INFO, json.dumps({
        "name": name, "run_id": run.run_id, "pid": os.getpid(), "started": run.started,
        "temp": run.workspace.temporary}), fsync=False)
    _write_params(run, run_dir)
    # The environment does not depend on the workspace: described while stages run.
    environment = Background(lambda: capture_environment(os.environ))
    bare = options.command is not None
    loop = StageLoop(
        git=git, workspace=run.workspace.path, pipeline=run.pipeline, plan=run.plan,
        params=run.params, cache=run.cache, secrets=run.secrets, run_id=run.run_id, name=name,
        run_dir=run_dir, echo=options.echo, emit=emit, bare=bare,
        reuse_outputs=not (options.no_run_cache or options.force or bare),
        keep_fds=run_lock.fds() if run_lock is not None else (),
    )
    loop.run()
    # What the run changed in the workspace: git looked as soon as the last stage's
    # process was done, while its outputs were saved.
    changes = loop.changes or start_status(git, run.workspace.path)
    fields = RunFields(
        run_id=run.run_id, name=name, message=options.message, baseline=facts.baseline,
        state=facts.state, kind="command" if bare else "pipeline", started=run.started,
        argv=options.argv, targets=options.targets, overrides=options.overrides,
        code=code, environment=environment.result(), reproduces=run.context.reproduces,
    )
    assembled = assemble_record(git, run.workspace, run.pipeline, run.params, loop, fields,
                                run_dir, run.secrets, emit)
    ref = _commit_and_remember(run, loop, assembled, run_dir, taken, changes)
    _keep_step_columns(git, ref.commit, assembled.record.steps)
    if not run.workspace.temporary and not bare:  # after the commit: not part of the run
        produced = [out for r in loop.records if r.status in CONTRIBUTING
                    for out in run.pipeline.stages[r.name].outs]
        ignore_outputs(git, produced)
    emit(RunEvent("recorded", None, ref.ref, {"ref": ref}))
    return RunResult(plan=run.plan, record=assembled.record, ref=ref)


def _commit_and_remember(
    run: _Run, loop: StageLoop, assembled: Assembled, run_dir: Path, taken: set[str],
    changes: GitJob,
) -> exps.ExperimentRef:
    """Commit the run as its experiment, then let the run-cache point at it for the
    outputs its stages saved."""
    git, facts = run.git, run.facts
    head = facts.state.head
    start = git.out("rev-parse", f"{head}^{{tree}}") if head != facts.baseline else None
    ref = commit_run(git, run.workspace, run.pipeline, assembled.record, run_dir,
                     assembled.log_files, taken, facts.committer_ident(), start,
                     named=run.options.name is not None, status=changes, secrets=run.secrets,
                     contributed={r.name for r in loop.records if r.status in CONTRIBUTING},
                     submodules=assembled.submodules.moved)
    for fingerprint_digest, files in loop.to_remember:
        loop.reuse.remember(fingerprint_digest, files, run_id=run.run_id,
                            experiment={"ref": ref.ref, "name": ref.name, "commit": ref.commit})
    return ref


def _keep_step_columns(git: Git, commit: str, steps: dict[str, Any]) -> None:
    """Write the columns of long step series for `tether view` while the record is in
    memory; looked for here first, so a run without any imports nothing more."""
    if any(isinstance(rows, list) and len(rows) >= LONG_STEP_SERIES for rows in steps.values()):
        from tether.record.stepfiles import keep_columns

        keep_columns(git.root, commit, steps)


def _write_params(run: _Run, run_dir: Path) -> None:
    """Write the overridden params files into the workspace, and the params the stages
    read through TETHER_PARAMS_FILE into the run's folder."""
    params, ws = run.params, run.workspace.path
    written = {file: render_params_file(params, file) for file in sorted(params.changed)}
    for file, text in written.items():
        write_text(ws / file, text)
    if written:
        remember_params(tmp_dir(run.git.root) / "params-cache.json", params, written)
    write_text(run_dir / "params.json", json.dumps(params.main(), default=str), fsync=False)


def render_plan(plan: Plan) -> str:
    """Human-readable plan: one line per stage with its reasons."""
    lines = []
    for decision in plan.decisions:
        mark = {"run": "run ", "skip": "skip", "restore": "restore"}[decision.action]
        lines.append(f"  {mark}  {decision.name}: {', '.join(decision.reasons)}")
    return "\n".join(lines)

