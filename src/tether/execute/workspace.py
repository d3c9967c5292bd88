"""Where a run happens: in place, or an isolated git worktree (`--temp`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tether.gitstore import worktrees
from tether.gitstore.git import Git
from tether.layout import STATE_DIR, worktrees_dir
from tether.structs import struct


@struct
class Workspace:
    path: Path
    temporary: bool

    def cleanup(self, git: Git) -> None:
        """Remove a temporary worktree and its administrative entry."""
        if not self.temporary:
            return
        git.run("worktree", "remove", "--force", "--", str(self.path), check=False)
        if self.path.exists():
            import shutil  # here, not at the top: an in-place run does without it

            shutil.rmtree(self.path, ignore_errors=True)
        git.run("worktree", "prune", check=False)
        worktrees.release(self.path)


def in_place(root: Path) -> Workspace:
    return Workspace(path=root, temporary=False)


def temporary_worktree(git: Git, run_id: str, inputs: list[str] | None = None) -> Workspace:
    """A detached worktree at HEAD holding the user's uncommitted changes too, and the
    `inputs` (dependencies no stage produces) git does not have: git-ignored files are
    copied from the work tree as they are, as an in-place run would read them, and data
    tracked with `tether add` that is missing there comes from the cache."""
    import shutil  # here, not at the top: an in-place run does without it

    from tether.gitstore.submodules import checkout_submodules, submodule_state

    path = worktrees_dir(git.root) / run_id
    worktrees.prune_stale(git, path.parent)  # those of killed runs
    worktrees.claim(path)  # before it exists: a concurrent prune must not take it
    workspace = Workspace(path=path, temporary=True)
    try:
        git.run("worktree", "add", "--detach", "--quiet", "--", str(path), "HEAD")
        # Submodules are checked out below, at the commits the user has checked out.
        diff = git.run("diff", "HEAD", "--binary", "--ignore-submodules=all", "--").stdout
        if diff.strip():
            git.run("apply", "--whitespace=nowarn", "-", input=diff, cwd=path)
        untracked = git.out("ls-files", "-o", "--exclude-standard", "-z").split("\0")
        for rel in untracked:
            if not rel or rel == STATE_DIR or rel.startswith(STATE_DIR + "/"):
                continue
            src = git.root / rel
            if src.is_file():
                dest = path / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        checkout_submodules(git, path, git.root, submodule_state(git, git.root).moved)
        _bring_inputs(git, path, inputs or [])
    except BaseException:
        with contextlib.suppress(Exception):
            workspace.cleanup(git)
        raise
    return workspace


def _bring_inputs(git: Git, path: Path, inputs: list[str]) -> None:
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
