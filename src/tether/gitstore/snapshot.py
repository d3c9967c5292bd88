"""A workspace snapshot: HEAD plus the uncommitted changes and untracked, non-ignored
files (what `tether run` would see), committed by `commit_workspace` with HEAD as
parent without touching the user's index.

A queued run starts from one (`refs/tether/queue/<id>`, one for a whole sweep; those
no entry uses any more are dropped); a `--temp` run's worktree is checked out from one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import GitError
from tether.gitstore.fastrecord import (
    UNTRACKED_SIZE_CAP,
    changed_paths,
    commit_workspace,
    start_status,
)
from tether.gitstore.git import Git, GitJob
from tether.layout import QUEUE_REFS, tmp_dir
from tether.structs import struct

if TYPE_CHECKING:
    from tether.record.redact import Secrets


@struct(frozen=True)
class Snapshot:
    ref: str
    commit: str
    baseline: str
    # What the snapshot lacks, for the user to hear (at enqueue, or as a run starts).
    warnings: tuple[str, ...] = ()


def take_snapshot(
    git: Git, root: Path, baseline: str, *, ref: str, ident: str, status: GitJob | None = None,
    secrets: Secrets | None = None, label: str = "queued snapshot",
) -> Snapshot:
    """Commit the workspace at `root` on top of `baseline` as the new ref `ref`.

    `ident` is the committer; `status` is `start_status` of `root`, if asked early.
    With `secrets`, files holding a secret value are stored with it replaced (a
    queued snapshot is pushed wherever the queue's workers fetch from). `label` names
    the snapshot in its warnings.
    """
    status = status or start_status(git, root)
    name = ref.rsplit("/", 1)[-1]
    commit = commit_workspace(
        git, root, parent=baseline, ref=ref, message=f"tether: {label} {name}\n", ident=ident,
        token=f"snapshot-{name}", scratch=tmp_dir(root),
        status=status, secrets=secrets,
    )
    if commit is None:
        raise GitError(["fast-import"], 1, f"{ref} already exists")
    return Snapshot(ref=ref, commit=commit, baseline=baseline,
                    warnings=_left_out(git, root, status, label))


def _left_out(git: Git, root: Path, status: GitJob, label: str) -> tuple[str, ...]:
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
            f"{UNTRACKED_SIZE_CAP >> 20} MiB not in the {label}, so the runs from it "
            f"will not have {'them' if len(big) > 1 else 'it'}: {shown} (commit, declare as a "
            "stage dependency or output, or git-ignore and fetch them in a stage)"
        )
    dirty = submodule_state(git, root).dirty
    if dirty:
        warnings.append(
            f"uncommitted changes inside submodule{'s' if len(dirty) > 1 else ''} "
            f"{', '.join(dirty)} are not in the {label} (commit inside the submodule "
            "to take them along)"
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
