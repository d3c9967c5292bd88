"""Workspace snapshots for queued runs: one commit on `refs/tether/queue/<id>`.

The snapshot is HEAD plus the uncommitted changes and untracked, non-ignored
files (what `tether run` would see), committed with HEAD as parent without
touching the user's index. One snapshot serves a whole sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tether.errors import GitError
from tether.gitstore.experiments import UNTRACKED_SIZE_CAP
from tether.gitstore.fastrecord import changed_paths, commit_workspace
from tether.gitstore.git import Git, GitJob
from tether.ids import new_id
from tether.layout import QUEUE_REFS, tmp_dir
from tether.structs import struct


@struct(frozen=True)
class Snapshot:
    ref: str
    commit: str
    baseline: str
    # What the queued runs will lack, for the user to hear at enqueue.
    warnings: tuple[str, ...] = ()


def take_snapshot(git: Git, root: Path, baseline: str, *, ident: str, status: GitJob) -> Snapshot:
    """Commit the workspace at `root` on top of `baseline` under a fresh queue ref.

    `ident` is the committer; `status` is `start_status` of `root`, asked early.
    Files holding a secret value (see `tether.record.redact`) are stored with it
    replaced: the snapshot is pushed wherever the queue's workers fetch from.
    """
    from tether.record.redact import discover

    snapshot_id = new_id()
    ref = f"{QUEUE_REFS}{snapshot_id}"
    commit = commit_workspace(
        git, root, parent=baseline, ref=ref, message=f"tether: queued snapshot {snapshot_id}\n",
        ident=ident, token=f"queue-{snapshot_id}", scratch=tmp_dir(root),
        status=status, secrets=discover(root=root),
    )
    if commit is None:
        raise GitError(["fast-import"], 1, f"{ref} already exists")
    return Snapshot(ref=ref, commit=commit, baseline=baseline,
                    warnings=_left_out(git, root, status))


def _left_out(git: Git, root: Path, status: GitJob) -> tuple[str, ...]:
    """Warnings for what the snapshot could not take: big untracked files, submodule edits."""
    from tether.gitstore.submodules import submodule_state

    warnings = []
    big = []
    for path in changed_paths(status)[1]:  # the job's answer is kept: no second git call
        try:
            if (root / path).stat().st_size > UNTRACKED_SIZE_CAP:
                big.append(path)
        except OSError:
            continue
    if big:
        shown = ", ".join(big[:5]) + (f" and {len(big) - 5} more" if len(big) > 5 else "")
        warnings.append(
            f"untracked file{'s' if len(big) > 1 else ''} over "
            f"{UNTRACKED_SIZE_CAP >> 20} MiB not in the queued snapshot, so the queued runs "
            f"will not have {'them' if len(big) > 1 else 'it'}: {shown} (commit, declare as a "
            "stage output, or git-ignore and fetch them in a stage)"
        )
    dirty = submodule_state(git, root).dirty
    if dirty:
        warnings.append(
            f"uncommitted changes inside submodule{'s' if len(dirty) > 1 else ''} "
            f"{', '.join(dirty)} are not in the queued snapshot (commit inside the submodule "
            "to queue them)"
        )
    return tuple(warnings)


def drop_unreferenced(
    git: Git, referenced: Iterable[str], *, now: float, grace: float = 600
) -> list[str]:
    """Delete queue snapshot refs no entry uses any more (one git call).

    Snapshots younger than `grace` seconds stay: an enqueue may have made one and
    not yet inserted its entries.
    """
    keep = set(referenced)
    found = [line.split(" ") for line in
             git.for_each_ref(QUEUE_REFS, "%(refname) %(objectname) %(committerdate:unix)")]
    doomed = [(ref, sha) for ref, sha, when in found
              if ref not in keep and float(when or 0) < now - grace]
    if doomed:
        script = "".join(f"delete {ref} {sha}\n" for ref, sha in doomed)
        git.run("update-ref", "--stdin", input=f"start\n{script}commit\n")
    return [ref for ref, _ in doomed]
