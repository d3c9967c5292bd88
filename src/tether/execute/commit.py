"""Commit a finished run as its experiment ref, keeping the run if its name was taken."""

from __future__ import annotations

from pathlib import Path

from tether.atomic import write_text
from tether.errors import ExperimentError
from tether.execute.workspace import Workspace
from tether.gitstore import experiments as exps
from tether.gitstore.fastrecord import record_commit
from tether.gitstore.git import Git, GitJob
from tether.gitstore.names import generate_name
from tether.layout import LOCK_FILE, RECORD_PATH, tmp_dir
from tether.record.record import RunRecord
from tether.record.redact import Secrets
from tether.spec import Pipeline


def commit_run(
    git: Git,
    workspace: Workspace,
    pipeline: Pipeline,
    record: RunRecord,
    run_dir: Path,
    log_files: dict[str, Path],
    taken: set[str],
    ident: str,
    start: str | None,
    *,
    named: bool,
    status: GitJob | None = None,
    secrets: Secrets | None = None,
    contributed: set[str] | None = None,
    submodules: dict[str, str] | None = None,
) -> exps.ExperimentRef:
    """Record the run as one commit; if its name was taken meanwhile, keep it anyway.

    The record must already be redacted; files of the workspace holding a secret
    are stored with it replaced, and listed in the record's `redacted_files`.

    A generated name is drawn again; a given name (`named`) gets the run id's tail,
    so the run is never lost to a race on its name. Metric files are forced into the
    tree only for the `contributed` stages (default: all), so a file left by an
    earlier run of a stage that failed or did not run is not recorded as this run's.
    """
    outs = [out for stage in pipeline.stages.values() for out in stage.outs]
    metric_files = [m for stage in pipeline.stages.values() for m in stage.metrics
                    if contributed is None or stage.name in contributed]
    params_files = list(record.params)
    record_path = run_dir / "record.json"

    def describe(redacted: dict[str, list[str]]) -> dict[str, Path]:
        # Written once the workspace's files are stored: the record names those redacted.
        record.redacted_files = redacted
        write_text(record_path, record.dumps(), fsync=False)
        return {RECORD_PATH: record_path, **log_files}

    for attempt in range(5):
        subject = f"tether: {record.name} ({record.status})"
        message = f"{subject}\n\n{record.message}\n" if record.message else subject + "\n"
        try:
            return record_commit(
                git,
                workspace.path,
                baseline=record.baseline,
                name=record.name,
                message=message,
                ident=ident,
                run_id=record.id,
                exclude=outs,
                force_add=[*metric_files, *params_files, LOCK_FILE],
                extra_files=describe,
                scratch=tmp_dir(git.root),
                start=start,
                status=status,
                secrets=secrets,
                submodules=submodules,
            )
        except ExperimentError:
            if attempt == 4:
                raise
            # Someone took the name while we ran: keep the run under a fresh name.
            taken.add(record.name)
            record.name = f"{record.name}-{record.id[-6:]}" if named else generate_name(taken)
    raise AssertionError("unreachable")
