"""What an attempt leaves behind: a queue entry that failed before any stage ran (bad
spec, missing input, broken snapshot, lost run process) is recorded as a `failed`
experiment, so no entry vanishes; an attempt's files are scrubbed of its secrets.

The commit has the entry's snapshot tree (or, if the worker does not have the
snapshot, its baseline's) plus the record, whose `error` says what went wrong,
and the attempt's output as `.tether/logs/attempt.log`; its parent is the baseline,
as for any experiment.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from tether.errors import ExperimentError, GitError
from tether.gitstore.experiments import ExperimentRef, read_record
from tether.gitstore.fastimport import commit_files
from tether.gitstore.git import Git, ident_of
from tether.layout import (
    LOG_HEAD_TAIL,
    LOG_INLINE_CAP,
    RECORD_LOGS_DIR,
    RECORD_PATH,
    exp_ref,
    tmp_dir,
)
from tether.queue.base import Entry
from tether.record.record import InvalidRecord, RunRecord
from tether.status import FAILED

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _already_recorded(git: Git, entry: Entry) -> ExperimentRef | None:
    for name in (entry.name, f"{entry.name}-{entry.run_id[-6:]}"):
        ref = exp_ref(entry.baseline, name)
        commit = git.ref_value(ref)
        if commit is None:
            continue
        with contextlib.suppress(GitError, InvalidRecord):
            if read_record(git, commit).id == entry.run_id:
                return ExperimentRef(ref=ref, baseline=entry.baseline, name=name, commit=commit)
    return None


def _base_tree(git: Git, entry: Entry) -> str:
    for rev in (entry.snapshot, entry.baseline):
        proc = git.run("rev-parse", "--verify", "-q", f"{rev}^{{tree}}", check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    return EMPTY_TREE


def _attempt_log(log: Path | None) -> bytes:
    try:
        data = log.read_bytes() if log is not None else b""
    except OSError:
        return b""
    if len(data) <= LOG_INLINE_CAP:
        return data
    return data[:LOG_HEAD_TAIL] + b"\n[... cut ...]\n" + data[-LOG_HEAD_TAIL:]


def record_failed_entry(
    git: Git, entry: Entry, error: str, *, log: Path | None = None, now: float | None = None
) -> ExperimentRef:
    """Record the entry's run id as a failed experiment (once: an existing record is kept)."""
    found = _already_recorded(git, entry)
    if found is not None:
        return found
    now = time.time() if now is None else now
    started = entry.started_at or now
    argv = ["tether", "run", "-n", entry.name, *[a for o in entry.overrides for a in ("-S", o)],
            *entry.targets, *(["--", *entry.command] if entry.command is not None else [])]
    record = RunRecord(
        id=entry.run_id, name=entry.name, message=entry.message, baseline=entry.baseline,
        branch=None, kind="command" if entry.command is not None else "pipeline",
        status=FAILED, exit_code=None, created_at=entry.created_at or started,
        started_at=started, ended_at=now, duration=max(0.0, now - started), argv=argv,
        targets=list(entry.targets), overrides=list(entry.overrides), params={}, metrics={},
        steps={}, stages=[], code={"snapshot": entry.snapshot}, environment={}, spec={},
        error=error,
    )
    files = {RECORD_PATH: record.dumps().encode()}
    attempt_log = _attempt_log(log)
    if attempt_log:
        files[f"{RECORD_LOGS_DIR}/attempt.log"] = attempt_log
    message = f"tether: {entry.name} (failed)\n\n{error}\n"
    ident = ident_of(git.run("var", "GIT_COMMITTER_IDENT", check=False))
    for name in (entry.name, f"{entry.name}-{entry.run_id[-6:]}"):
        ref = exp_ref(entry.baseline, name)
        commit = commit_files(git, files, parent=entry.baseline, ref=ref, message=message,
                              ident=ident, token=entry.run_id, scratch=tmp_dir(git.root),
                              start=_base_tree(git, entry))
        if commit is not None:
            return ExperimentRef(ref=ref, baseline=entry.baseline, name=name, commit=commit)
        # else the name was taken meanwhile (not by this run: checked above)
    raise ExperimentError(f"cannot record failed entry {entry.id}: its names are taken")


def scrub_attempt(root: Path, entry: Entry, attempt_dir: Path) -> None:
    """Replace the secrets of the run's environment in what the attempt left on disk."""
    from tether.errors import TetherError
    from tether.record.redact import discover

    try:
        secrets = discover(root=root, more_envs=[entry.env])
    except TetherError:  # an unreadable `redact:` config: the environment's still count
        secrets = discover(more_envs=[entry.env])
    for path in (attempt_dir / "output.log", attempt_dir / "job.json"):
        secrets.scrub_file(path)
