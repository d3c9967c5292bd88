"""Put a finished run's record together: its status, results and code, redacted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from tether.execute.events import RunEvent
from tether.execute.stageloop import Emit, StageLoop
from tether.execute.workspace import Workspace
from tether.gitstore.git import Git, RepoState
from tether.gitstore.submodules import SubmoduleState, gitlinks_changed, submodule_state
from tether.parameters import Params
from tether.record.record import RunRecord, StageRecord, clean_json
from tether.record.redact import Secrets
from tether.record.results import collect_metrics, collect_steps, record_logs
from tether.spec import Pipeline
from tether.status import INTERRUPTED, NOT_RUN, SKIPPED, SUCCESS
from tether.structs import struct


@struct
class RunFields:
    """What the record says of the run beyond its stages: who asked for it, and how."""

    run_id: str
    name: str
    message: str
    baseline: str
    state: RepoState  # the user's repository when the run started
    kind: str  # pipeline | command
    started: float
    argv: list[str]
    targets: list[str]
    overrides: list[str]
    code: dict[str, Any]  # the baseline, the uncommitted diff and untracked files
    environment: dict[str, Any]
    reproduces: dict[str, Any] | None = None  # `tether repro`: the original experiment


class Assembled(NamedTuple):
    record: RunRecord
    log_files: dict[str, Path]  # tree path -> stage log stored beside the record
    submodules: SubmoduleState  # of the workspace, as the record's commit stores them


def run_status(stages: list[StageRecord]) -> tuple[str, int | None]:
    """The run's status and exit code from its stages': the first that did not succeed
    decides; stages left unrun with none failed mean the run was interrupted."""
    failed = [r for r in stages if r.status not in (SUCCESS, SKIPPED, NOT_RUN)]
    if not failed:
        return (INTERRUPTED if any(r.status == NOT_RUN for r in stages) else SUCCESS), 0
    exit_code = failed[0].exit_code
    # It exited 0, yet failed (its results were unreadable): no exit code to speak of.
    return failed[0].status, None if exit_code == 0 else exit_code


def assemble_record(
    git: Git, workspace: Workspace, pipeline: Pipeline, params: Params, loop: StageLoop,
    fields: RunFields, run_dir: Path, secrets: Secrets, emit: Emit,
) -> Assembled:
    """The run's record, redacted, with what is committed beside it.

    What the stages read and wrote in `run_dir` is scrubbed of secrets too.
    """
    ended = time.time()
    status, exit_code = run_status(loop.records)
    metrics = collect_metrics(loop.records, loop.results, run_dir)
    steps = collect_steps(loop.records, loop.results, run_dir)
    log_files = record_logs(loop.records, run_dir)
    submodules = submodule_state(git, workspace.path)
    code = _with_submodules(git, workspace, fields, submodules, emit)
    record = RunRecord(
        id=fields.run_id,
        name=fields.name,
        message=fields.message,
        baseline=fields.baseline,
        branch=fields.state.branch,
        kind=fields.kind,
        status=status,
        exit_code=exit_code,
        created_at=fields.started,
        started_at=fields.started,
        ended_at=ended,
        duration=ended - fields.started,
        argv=fields.argv,
        targets=fields.targets,
        overrides=fields.overrides,
        params=clean_json(params.to_json()),
        metrics=clean_json(metrics),
        steps=clean_json(steps),
        stages=loop.records,
        code=code,
        environment=fields.environment,
        spec=pipeline.to_json(),
        temp_workspace=workspace.temporary,
        reproduces=fields.reproduces,
    )
    record.redact(secrets)
    if secrets:  # what the stages read and wrote stays on disk: scrubbed now they are done
        for path in [run_dir / "params.json", *run_dir.glob("steps/*"),
                     *run_dir.glob("summary/*")]:
            secrets.scrub_file(path)
    return Assembled(record, log_files, submodules)


def _with_submodules(
    git: Git, workspace: Workspace, fields: RunFields, submodules: SubmoduleState, emit: Emit
) -> dict[str, Any]:
    """The record's `code`, with the submodules not at the baseline's commit (moved in
    this workspace, or in the snapshot a queued run starts from) and those with
    uncommitted changes, which are not recorded (a warning says so)."""
    commits = {**gitlinks_changed(git, workspace.path, fields.baseline, fields.state.head),
               **submodules.moved}
    dirty = submodules.dirty
    if workspace.temporary:  # the user's own edits in a submodule did not come along
        dirty = sorted({*dirty, *submodule_state(git, git.root).dirty})
    if dirty:
        emit(RunEvent("warning", None, _dirty_submodules_warning(dirty)))
    if commits or dirty:
        return {**fields.code, "submodules": {"commits": commits, "dirty": dirty}}
    return fields.code


def _dirty_submodules_warning(paths: list[str]) -> str:
    return (
        f"uncommitted changes inside submodule{'s' if len(paths) > 1 else ''} "
        f"{', '.join(paths)} are not recorded: the record holds each submodule's "
        "checked-out commit only (commit inside the submodule to keep them)"
    )
