"""tether's own git worktrees (`--temp` runs, queue attempts), all under `.tether/worktrees/`:
adding one, who owns each, and removing the orphans.

A process that adds a worktree writes `<name>.owner` beside it (pid and process
start time). A run or worker killed with SIGKILL never removes its worktree; the
next `--temp` run, worker start or `tether gc` removes every worktree in the folder
whose owner is gone, and lets git forget it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from tether.gitstore.git import Git

OWNER_SUFFIX = ".owner"


def _start_time(pid: int) -> str:
    """The process's start time (Linux: field 22 of /proc/<pid>/stat), "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19] if ")" in stat else ""


def owner_file(worktree: Path) -> Path:
    return worktree.with_name(worktree.name + OWNER_SUFFIX)


def claim(worktree: Path, pid: int | None = None) -> None:
    """Note that process `pid` (default: this one) owns the worktree at `worktree`."""
    pid = os.getpid() if pid is None else pid
    worktree.parent.mkdir(parents=True, exist_ok=True)
    owner_file(worktree).write_text(f"{pid} {_start_time(pid)}\n")


def release(worktree: Path) -> None:
    owner_file(worktree).unlink(missing_ok=True)


def owner_alive(worktree: Path) -> bool:
    """Whether the process that owns the worktree still runs (False when none is noted)."""
    try:
        pid_text, _, started = owner_file(worktree).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if not pid_alive(pid):
        return False
    return not started or _start_time(pid) in ("", started)  # else: the pid was reused


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def prune_stale(git: Git, folder: Path) -> list[Path]:
    """Remove worktrees under `folder` whose owner is gone; the paths removed."""
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(OWNER_SUFFIX):
            if not path.with_name(path.name.removesuffix(OWNER_SUFFIX)).exists():
                path.unlink(missing_ok=True)  # its worktree is gone already
            continue
        if not path.is_dir() or owner_alive(path):
            continue
        git.run("worktree", "remove", "--force", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
        release(path)
        removed.append(path)
    git.run("worktree", "prune", check=False)
    return removed


def add_worktree(
    git: Git, path: Path, commit: str, *, contents: str | None = None,
    moved: Mapping[str, str] | None = None,
) -> None:
    """Check out `commit` detached at `path` (a folder of `worktrees_dir`), owned by
    this process, with its submodules checked out offline from the user's.

    `contents`, a snapshot commit (`tether.gitstore.snapshot`), gives the files and
    index instead of `commit`, which stays HEAD: what differs from HEAD is then what
    the snapshot took from the user's workspace. `moved` (path -> commit): submodules
    to check out at another commit than the gitlink.
    """
    from tether.gitstore.submodules import checkout_submodules

    remove_worktree(git, path)  # what a crashed earlier holder (a retried attempt) left
    claim(path)  # before it exists: a concurrent prune must not take it
    git.run("worktree", "add", "--detach", "--quiet", "--", str(path), commit)
    if contents is not None:
        git.run("read-tree", "-u", "--reset", contents, cwd=path)
    checkout_submodules(git, path, git.root, moved)


def remove_worktree(git: Git, path: Path) -> None:
    """Remove a worktree of `add_worktree`, its owner note, and git's entry for it."""
    if path.exists():
        removed = git.run("worktree", "remove", "--force", "--force", "--", str(path),
                          check=False)
        shutil.rmtree(path, ignore_errors=True)
        if removed.returncode != 0:  # e.g. it holds submodules, which git won't remove
            git.run("worktree", "prune", check=False)
    release(path)
