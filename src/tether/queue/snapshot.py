"""Workspace snapshots for queued runs: one commit on `refs/tether/queue/<id>`.

The snapshot is HEAD plus the uncommitted changes and untracked, non-ignored
files (what `tether run` would see), committed with HEAD as parent without
touching the user's index. One snapshot serves a whole sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tether.errors import GitError
from tether.gitstore.fastrecord import commit_workspace
from tether.gitstore.git import Git, GitJob
from tether.ids import new_id
from tether.layout import QUEUE_REFS, tmp_dir
from tether.structs import struct


@struct(frozen=True)
class Snapshot:
    ref: str
    commit: str
    baseline: str


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
    return Snapshot(ref=ref, commit=commit, baseline=baseline)


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
