"""Where a run happens: in place, or an isolated git worktree (`--temp`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tether.gitstore import worktrees
from tether.gitstore.git import Git
from tether.layout import SNAPSHOT_REFS, worktrees_dir
from tether.structs import struct


@struct
class Workspace:
    path: Path
    temporary: bool
    # What the user should hear about the workspace (what its snapshot left out).
    warnings: tuple[str, ...] = ()

    def cleanup(self, git: Git) -> None:
        """Remove a temporary worktree and its administrative entry."""
        if self.temporary:
            worktrees.remove_worktree(git, self.path)


def in_place(root: Path) -> Workspace:
    return Workspace(path=root, temporary=False)


def temporary_worktree(
    git: Git, run_id: str, inputs: list[str] | None = None, *, ident: str
) -> Workspace:
    """A detached worktree at HEAD holding the user's uncommitted changes and untracked
    files too (from a snapshot of the work tree, as a queued run's), and the `inputs`
    (dependencies no stage produces) git does not have: git-ignored files are copied
    from the work tree as they are, as an in-place run would read them, and data
    tracked with `tether add` that is missing there comes from the cache.

    `ident` commits the snapshot, whose ref is gone once the worktree holds it.
    """
    from tether.gitstore.snapshot import take_snapshot
    from tether.gitstore.submodules import submodule_state

    path = worktrees_dir(git.root) / run_id
    worktrees.prune_stale(git, path.parent)  # those of killed runs
    workspace = Workspace(path=path, temporary=True)
    # Not redacted: the run reads the files as they are; the ref never leaves this
    # repository, and a record stores what differs from HEAD redacted, as in place.
    snapshot = take_snapshot(git, git.root, git.head_commit(), ref=f"{SNAPSHOT_REFS}{run_id}",
                             ident=ident, label="--temp worktree")
    try:
        worktrees.add_worktree(git, path, snapshot.baseline, contents=snapshot.commit,
                               moved=submodule_state(git, git.root).moved)
        workspace.warnings = snapshot.warnings
        bring_inputs(git, path, inputs or [])
    except BaseException:
        with contextlib.suppress(Exception):
            workspace.cleanup(git)
        raise
    finally:
        git.run("update-ref", "-d", snapshot.ref, snapshot.commit, check=False)
    return workspace


def bring_inputs(git: Git, path: Path, inputs: list[str]) -> None:
    """Copy the `inputs` the worktree at `path` lacks from the user's work tree (each
    through the path guard), and data tracked with `tether add` from the cache."""
    import shutil

    from tether.cache.tracked import materialize, work_tree_pointers
    from tether.pathguard import WorkTreeGuard
    from tether.project import object_store, open_remote

    guard = WorkTreeGuard(path)
    for rel in inputs:
        source, dest = git.root / rel, guard.target(rel, where="the run's inputs")
        if dest.exists() or not source.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, symlinks=True)
        else:
            shutil.copy2(source, dest)
    pointers = work_tree_pointers(Git(path))
    if pointers:
        materialize(path, pointers, object_store(git.root),
                    remote=lambda: open_remote(git.root))
