"""tether's own git worktrees (`--temp` runs): who owns each, and removing the orphans.

A process that adds a worktree under a tether folder writes `<name>.owner`
beside it (pid and process start time). A run killed with SIGKILL never removes
its worktree; the next `--temp` run, worker start or `tether gc` removes every
worktree in the folder whose owner is gone, and lets git forget it.
"""

from __future__ import annotations

import os
import shutil
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return not started or _start_time(pid) in ("", started)  # else: the pid was reused


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
