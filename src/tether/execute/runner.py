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
from tether.cache.tracked import external_deps
from tether.errors import ExperimentError, SpecError, UsageError
from tether.execute.commit import commit_run
from tether.execute.concurrency import Background, StopOnSignal
from tether.execute.displace import Displaced
from tether.execute.facts import RunFacts
from tether.execute.reuse import Reuse, stage_files
from tether.execute.runlock import RunLock
from tether.execute.stage import run_stage, stage_environment
from tether.execute.supervisor import SupervisorEvent
from tether.execute.workspace import Workspace, in_place, temporary_worktree
from tether.gitstore import experiments as exps
from tether.gitstore.fastrecord import start_status
from tether.gitstore.git import Git, GitJob, repo_state
from tether.gitstore.names import generate_name, validate_name
from tether.gitstore.submodules import gitlinks_changed, submodule_state
from tether.ids import new_run_id
from tether.layout import runs_dir, tmp_dir
from tether.lockfile import StageLock, read_lock, write_lock
from tether.parameters import (
    Params,
    apply_overrides,
    load_params,
    parse_override,
    remember_params,
    render_params_file,
)
from tether.plan import Plan, fingerprint, make_plan
from tether.project import ensure_state_dir, load_project_pipeline
from tether.record.environment import capture_environment
from tether.record.record import RunRecord, StageRecord, clean_json
from tether.record.redact import Secrets, discover
from tether.record.results import (
    CONTRIBUTING,
    StageResults,
    collect_metrics,
    collect_steps,
    read_stage_results,
    record_logs,
)
from tether.spec import Pipeline
from tether.structs import field, struct


@struct(frozen=True)
class RunEvent:
    """Something the CLI may want to show while a run goes on."""

    kind: str  # waiting plan stage_start stage_skip stage_end reminder stalled warning recorded
    stage: str | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@struct
class RunOptions:
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
    command_limits: dict[str, float | None] = field(default_factory=dict)
    # Set by queue workers: record against this baseline (the user's HEAD when the
    # entry was queued) with this run id, though the worktree's HEAD is a snapshot.
    baseline: str | None = None
    run_id: str | None = None
    # Where `.tether/runs/<run-id>` goes (default: the project root); a queue worker
    # running in a throwaway worktree points it at a folder that outlives the run.
    state_root: Path | None = None
    no_run_cache: bool = False
    # In place: wait for another in-place run of the work tree instead of BusyError.
    wait: bool = False
    # The run's git questions, when the caller started them early (`tether run` does,
    # before importing this module); else `run` starts them.
    facts: RunFacts | None = None


@struct
class RunResult:
    plan: Plan
    record: RunRecord | None = None
    ref: exps.ExperimentRef | None = None

    @property
    def status(self) -> str:
        return self.record.status if self.record else "planned"


def run(cwd: Path, options: RunOptions) -> RunResult:
    """Plan the pipeline (or bare command) and, unless dry, run and record it."""
    facts = None if options.dry else options.facts or RunFacts(cwd, options.baseline)
    try:
        if options.command is not None and options.targets:
            raise UsageError("give either stage names or `-- COMMAND`, not both")
        return _run(cwd, options, facts)
    finally:
        if facts is not None:
            facts.close()


def _run(cwd: Path, options: RunOptions, facts: RunFacts | None) -> RunResult:
    state = facts.state if facts else repo_state(cwd)
    root = state.root
    git = Git(root)
    baseline = options.baseline or state.head
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
        return _plan_and_run(cwd, git, options, facts, overrides, run_lock)
    finally:
        if run_lock is not None:
            run_lock.release()


def _plan_and_run(
    cwd: Path, git: Git, options: RunOptions, facts: RunFacts | None, overrides: list[Any],
    run_lock: RunLock | None,
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
        plan = make_plan(pipeline, order, root, params, read_lock(root), cache,
                         force=options.force, run_cache=run_cache, secrets=secrets,
                         always=always)
        if facts is None:
            return RunResult(plan=plan)
        ensure_state_dir(root)
        started = time.time()
        run_id = options.run_id or new_run_id(started)
        workspace = (temporary_worktree(git, run_id, [d for _, d in external_deps(pipeline, order)],
                                        ident=facts.committer_ident())
                     if options.temp else in_place(root))
        try:
            if workspace.temporary:
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
            return _execute_and_record(
                git, workspace, pipeline, plan, params, cache, options, facts, run_id, started,
                secrets, run_lock,
            )
        finally:
            workspace.cleanup(git)
    finally:
        cache.close()



def _load_effective_params(root: Path, pipeline: Pipeline, overrides: list[Any]) -> Params:
    files = {ref.file for stage in pipeline.stages.values() for ref in stage.params}
    files |= {ov.file for ov in overrides if not ov.allow_new}
    params = load_params(root, files, tmp_dir(root) / "params-cache.json")
    apply_overrides(params, overrides)
    return params


def _execute_and_record(
    git: Git,
    workspace: Workspace,
    pipeline: Pipeline,
    plan: Plan,
    params: Params,
    cache: StatCache,
    options: RunOptions,
    facts: RunFacts,
    run_id: str,
    started: float,
    secrets: Secrets,
    run_lock: RunLock | None = None,
) -> RunResult:
    emit = options.on_event or (lambda event: None)
    state, baseline = facts.state, facts.baseline
    taken, code = facts.taken_names(), facts.code()
    name = options.name or generate_name(taken)
    if run_lock is not None:
        run_lock.update(name=name)
    run_dir = runs_dir(options.state_root or git.root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ws = workspace.path
    bare = options.command is not None

    written = {file: render_params_file(params, file) for file in sorted(params.changed)}
    for file, text in written.items():
        write_text(ws / file, text)
    if written:
        remember_params(tmp_dir(git.root) / "params-cache.json", params, written)
    params_json = run_dir / "params.json"
    write_text(params_json, json.dumps(params.main(), default=str), fsync=False)

    lock = read_lock(ws)
    # The environment does not depend on the workspace: describe it while stages run.
    environment = Background(lambda: capture_environment(os.environ))
    stage_records: list[StageRecord] = []
    reuse = Reuse(git.root, cache)
    to_remember: list[tuple[str, dict[str, str]]] = []
    stopped = False
    # What the run changed in the workspace: git looks as soon as the last stage's
    # process is done, while its outputs are saved and the record is put together.
    last = max((i for i, d in enumerate(plan.decisions) if d.action != "skip"), default=-1)
    changes: GitJob | None = None
    results: dict[str, StageResults] = {}
    with StopOnSignal() as stop:
        for index, decision in enumerate(plan.decisions):
            stage = pipeline.stages[decision.name]
            record = StageRecord(name=stage.name, status="skipped", reasons=decision.reasons,
                                 cmd=list(stage.cmd))
            stage_records.append(record)
            if stopped:
                record.status = "not_run"
                continue
            if decision.action == "skip":
                previous = lock.get(stage.name)
                if previous:
                    record.fingerprint = previous.fingerprint
                    record.deps, record.params, record.outs = (
                        previous.deps, previous.params, previous.outs
                    )
                try:
                    results[stage.name] = read_stage_results(stage, ws)
                except SpecError as exc:
                    record.error = str(exc)  # its results are unreadable: it contributes none
                emit(RunEvent("stage_skip", stage.name, "unchanged"))
                continue
            restored: dict[str, Any] | None = None
            # Earlier outputs must not pass for this run's: move them out of the way.
            aside = Displaced(ws, stage_files(stage), run_dir / "displaced" / stage.name)
            try:
                fp = fingerprint(stage, ws, params, cache)
                record.fingerprint, record.deps, record.params = fp.digest, fp.deps, fp.params
                aside.move()
                restored = None if options.no_run_cache or options.force or bare else (
                    reuse.restore(stage, fp.digest, ws)
                )
                if restored is not None:
                    record.status = "success"
                    record.restored_from = dict(restored.get("experiment") or {})
                    emit(RunEvent("stage_restored", stage.name,
                                  str(record.restored_from.get("name", "an earlier run"))))
                else:
                    emit(RunEvent("stage_start", stage.name, "; ".join(decision.reasons)))
                    run_stage(
                        stage,
                        workspace=ws,
                        env=stage_environment(
                            stage, os.environ, _tether_vars(run_id, name, stage.name, ws, run_dir)
                        ),
                        log_path=run_dir / "logs" / f"{stage.name}.log",
                        record=record,
                        echo=options.echo,
                        on_event=_supervisor_events(emit, stage.name),
                        stop=stop,
                        secrets=secrets,
                    )
                if index == last:
                    changes = start_status(git, ws)
            except KeyboardInterrupt:
                record.status = "interrupted"
            except BaseException:
                if record.started_at is None and restored is None:
                    aside.put_back()
                raise
            if record.status == "success":
                try:
                    results[stage.name] = read_stage_results(stage, ws)
                except SpecError as exc:
                    # Exit 0 but unreadable results: the stage failed; the lock must not
                    # say it is done, and the run is recorded all the same.
                    record.status, record.error = "failed", str(exc)
            if record.status == "success":
                aside.discard()
            elif record.started_at is None and restored is None:
                aside.put_back()  # interrupted before it started: nothing was replaced
            emit(RunEvent("stage_end", stage.name, record.status, {"record": record}))
            if record.status != "success":
                stopped = True
            elif not bare:  # a bare command: neither the lock nor the run-cache could reuse it
                record.outs = {out: cache.hash_path(ws / out) for out in stage.outs}
                if restored is None:
                    files = reuse.save_outputs(stage, ws, record.outs)
                    to_remember.append((record.fingerprint or "", files))
                lock[stage.name] = StageLock(
                    fingerprint=record.fingerprint or "",
                    cmd=secrets.scrub_json(list(stage.cmd)),
                    deps=record.deps,
                    params=record.params,
                    outs=record.outs,
                )
                write_lock(ws, lock)
                cache.flush()
            if stop.is_set() and record.status == "success":
                stopped = True

    ended = time.time()
    changes = changes or start_status(git, ws)
    failed = [r for r in stage_records if r.status not in ("success", "skipped", "not_run")]
    if not failed and any(r.status == "not_run" for r in stage_records):
        status = "interrupted"
    else:
        status = failed[0].status if failed else "success"
    exit_code = failed[0].exit_code if failed else 0
    if failed and exit_code == 0:
        exit_code = None  # it exited 0, yet failed (its results were unreadable)
    metrics = collect_metrics(stage_records, results, run_dir)
    steps = collect_steps(stage_records, results, run_dir)
    log_files = record_logs(stage_records, run_dir)
    contributed = {r.name for r in stage_records if r.status in CONTRIBUTING}
    submodules = submodule_state(git, ws)
    # Submodules not at the baseline's commit: moved in this workspace, or in the snapshot
    # a queued run starts from.
    commits = {**gitlinks_changed(git, ws, baseline, state.head), **submodules.moved}
    dirty = submodules.dirty
    if workspace.temporary:  # the user's own edits in a submodule did not come along
        dirty = sorted({*dirty, *submodule_state(git, git.root).dirty})
    if commits or dirty:
        code = {**code, "submodules": {"commits": commits, "dirty": dirty}}
    if dirty:
        emit(RunEvent("warning", None, _dirty_submodules_warning(dirty)))

    run_record = RunRecord(
        id=run_id,
        name=name,
        message=options.message,
        baseline=baseline,
        branch=state.branch,
        kind="command" if options.command is not None else "pipeline",
        status=status,
        exit_code=exit_code,
        created_at=started,
        started_at=started,
        ended_at=ended,
        duration=ended - started,
        argv=options.argv,
        targets=options.targets,
        overrides=options.overrides,
        params=clean_json(params.to_json()),
        metrics=clean_json(metrics),
        steps=clean_json(steps),
        stages=stage_records,
        code=code,
        environment=environment.result(),
        spec=pipeline.to_json(),
        temp_workspace=workspace.temporary,
    )
    run_record.redact(secrets)
    if secrets:  # what the stages read and wrote stays on disk: scrubbed now they are done
        for path in [params_json, *run_dir.glob("steps/*"), *run_dir.glob("summary/*")]:
            secrets.scrub_file(path)
    start = git.out("rev-parse", f"{state.head}^{{tree}}") if state.head != baseline else None
    ident = facts.committer_ident()
    ref = commit_run(git, workspace, pipeline, run_record, run_dir, log_files, taken, ident, start,
                     named=options.name is not None, status=changes, secrets=secrets,
                     contributed=contributed, submodules=submodules.moved)
    for fingerprint_digest, files in to_remember:
        reuse.remember(fingerprint_digest, files, run_id=run_id,
                       experiment={"ref": ref.ref, "name": ref.name, "commit": ref.commit})
    emit(RunEvent("recorded", None, ref.ref, {"ref": ref}))
    return RunResult(plan=plan, record=run_record, ref=ref)


def _dirty_submodules_warning(paths: list[str]) -> str:
    return (
        f"uncommitted changes inside submodule{'s' if len(paths) > 1 else ''} "
        f"{', '.join(paths)} are not recorded: the record holds each submodule's "
        "checked-out commit only (commit inside the submodule to keep them)"
    )


def _tether_vars(run_id: str, name: str, stage: str, ws: Path, run_dir: Path) -> dict[str, str]:
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


def _supervisor_events(
    emit: Callable[[RunEvent], None], stage: str
) -> Callable[[SupervisorEvent], None]:
    def forward(event: SupervisorEvent) -> None:
        if event.kind == "expected_exceeded":
            emit(RunEvent("reminder", stage, event.detail))
        elif event.kind in ("stalled", "timeout"):
            emit(RunEvent(event.kind, stage, event.detail))

    return forward


def render_plan(plan: Plan) -> str:
    """Human-readable plan: one line per stage with its reasons."""
    lines = []
    for decision in plan.decisions:
        mark = {"run": "run ", "skip": "skip", "restore": "restore"}[decision.action]
        lines.append(f"  {mark}  {decision.name}: {', '.join(decision.reasons)}")
    return "\n".join(lines)

