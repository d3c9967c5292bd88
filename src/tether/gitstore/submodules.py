"""Submodules as git sees them: the commit each has checked out, and local changes in it.

A record stores each submodule as a gitlink to the commit actually checked out
(which may differ from the baseline's); a temporary or queue worktree checks the
submodules out at the recorded commits, cloned from the user's own submodule
checkouts (no network). Changes not committed inside a submodule cannot be
recorded as a gitlink: the run warns about them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from tether.gitstore.git import Git


class SubmoduleState(NamedTuple):
    """`moved`: path -> checked-out commit where it differs from HEAD's gitlink;
    `dirty`: submodules with uncommitted or untracked files."""

    moved: dict[str, str]
    dirty: list[str]


def submodule_state(git: Git, workspace: Path) -> SubmoduleState:
    """The submodules of `workspace` that moved or hold changes (none: no git call)."""
    if not (workspace / ".gitmodules").is_file():
        return SubmoduleState({}, [])
    out = git.run(
        "--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=no",
        "--no-renames", "--ignore-submodules=none", cwd=workspace,
    ).stdout.decode(errors="surrogateescape")
    moved: dict[str, str] = {}
    dirty: list[str] = []
    for entry in out.split("\0"):
        # "1 XY S<c><m><u> mH mI mW hH hI path" for a changed submodule.
        fields = entry.split(" ", 8)
        if len(fields) < 9 or fields[0] != "1" or not fields[2].startswith("S"):
            continue
        flags, head_link, path = fields[2], fields[6], fields[8]
        if flags[2] == "M" or flags[3] == "U":
            dirty.append(path)
        if flags[1] == "C" or fields[1] != "..":
            proc = git.run("rev-parse", "--verify", "-q", "HEAD", cwd=workspace / path,
                           check=False)
            commit = proc.stdout.decode().strip()
            if proc.returncode == 0 and commit and commit != head_link:
                moved[path] = commit
    return SubmoduleState(moved, dirty)


def checkout_submodules(
    git: Git, worktree: Path, source: Path, moved: Mapping[str, str] | None = None
) -> None:
    """Check out `worktree`'s submodules like `git submodule update --init`, offline.

    Each is cloned from the same submodule checked out under `source` (the user's
    work tree), so no URL is contacted; submodules not checked out there stay
    empty, as they are there. `moved` (path -> commit) checks those out at another
    commit than the worktree's gitlink (a `--temp` run of a moved submodule).
    """
    if not (worktree / ".gitmodules").is_file():
        return
    listing = git.run(
        "config", "-z", "--file", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$",
        cwd=worktree, check=False,
    ).stdout.decode(errors="surrogateescape")
    options: list[str] = ["-c", "protocol.file.allow=always"]
    paths: list[str] = []
    for item in listing.split("\0"):
        key, _, path = item.partition("\n")
        if not path or not (source / path / ".git").exists():
            continue
        name = key[len("submodule."):-len(".path")]
        options += ["-c", f"submodule.{name}.url={source / path}"]
        paths.append(path)
    if not paths:
        return
    git.run(*options, "submodule", "update", "--init", "--quiet", "--", *paths, cwd=worktree)
    for path, commit in (moved or {}).items():
        if path in paths:
            git.run("checkout", "-q", "--detach", commit, "--", cwd=worktree / path)


def gitlinks_changed(git: Git, workspace: Path, old: str, new: str) -> dict[str, str]:
    """path -> commit of the submodules whose gitlink differs between commits `old` and `new`."""
    if old == new or not (workspace / ".gitmodules").is_file():
        return {}
    out = git.run("diff-tree", "-r", "-z", "--no-renames", old, new, "--",
                  cwd=workspace).stdout.decode(errors="surrogateescape").split("\0")
    found = {}
    for meta, path in zip(out[0::2], out[1::2], strict=False):
        fields = meta.split()
        if len(fields) == 5 and fields[1] == "160000":
            found[path] = fields[3]
    return found


def in_submodules(git: Git, commit: str, paths: list[str]) -> set[str]:
    """Which of `paths` lie in a submodule of `commit` at its gitlink, as a worktree of
    `commit` checks it out from the user's submodule (`checkout_submodules`)."""
    if not paths or not (git.root / ".gitmodules").is_file():
        return set()
    listing = git.run(
        "config", "-z", "--blob", f"{commit}:.gitmodules", "--get-regexp",
        r"^submodule\..*\.path$", check=False,
    ).stdout.decode(errors="surrogateescape")
    found: set[str] = set()
    for item in listing.split("\0"):
        sub = item.partition("\n")[2]
        inside = [p for p in paths if p == sub or p.startswith(sub + "/")]
        if not sub or not inside or not (git.root / sub / ".git").exists():
            continue
        link = git.run("rev-parse", "--verify", "-q", f"{commit}:{sub}", check=False)
        sha = link.stdout.decode().strip()
        if link.returncode != 0:
            continue
        for path in inside:
            rest = path[len(sub) + 1:]
            if not rest or git.run("cat-file", "-e", f"{sha}:{rest}", cwd=git.root / sub,
                                   check=False).returncode == 0:
                found.add(path)
    return found
