"""One commit made by `git fast-import`, its ref created atomically and only if free.

fast-import updates refs in a transaction that expects the ref to be absent when
it was absent at start, and refuses to move an existing ref to a commit that
does not contain its old value (no other run's commit is ever in a new one).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from tether.errors import GitError
from tether.gitstore.git import Git, git_env

# When a record brings the repository to this many packs, the small ones are merged.
_PACKS_KEPT = 30


def quote_path(path: str) -> str:
    """A path as fast-import reads it: C-quoted when it could be misparsed."""
    if "\n" in path or path.startswith('"'):
        escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return path


def commit_files(
    git: Git, files: Mapping[str, bytes], *, parent: str, ref: str, message: str, ident: str,
    token: str, scratch: Path, start: str | None = None,
) -> str | None:
    """Commit the tree `start` (default: `parent`'s) plus `files` (tree path -> content)
    on top of `parent`, creating `ref` only if it is free (None when it was taken)."""

    def write_files(stream: IO[bytes]) -> None:
        for path, data in files.items():
            header = f"M 100644 inline {quote_path(path)}\ndata {len(data)}\n"
            stream.write(header.encode(errors="surrogateescape") + data + b"\n")

    return fast_import_commit(git, ref=ref, parent=parent, message=message, ident=ident,
                              token=token, scratch=scratch, start=start,
                              write_changes=write_files)


def fast_import_commit(
    git: Git, *, ref: str, parent: str, message: str, ident: str, token: str, scratch: Path,
    start: str | None, write_changes: Callable[[IO[bytes]], None],
) -> str | None:
    """Create `ref` at a new commit on `parent` whose tree is `start` (default: the
    parent's) changed by the file commands `write_changes` writes; its sha, or None
    when `ref` existed already. `token` names the marks file."""
    marks = scratch / f"marks-{token}"
    scratch.mkdir(parents=True, exist_ok=True)
    # fast-import hands fewer than 100 objects to `git unpack-objects`, a process that
    # costs a run 3 ms: the record's few objects stay one small pack instead, and the
    # small packs are rolled up every _PACKS_KEPT runs (below).
    packs = _count_packs(_pack_dir(git.root))
    keep = ["-c", "fastimport.unpackLimit=0"] if packs is not None else []
    proc = subprocess.Popen(
        ["git", *keep, "fast-import", "--quiet", "--done", f"--export-marks={marks}"],
        cwd=git.root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        bufsize=1 << 16,  # one write per 64 KiB, not per file: many small files are common
        env=git_env(),
    )
    assert proc.stdin is not None
    stream = proc.stdin
    try:
        body = message.encode()
        when = f"{int(time.time())} {time.strftime('%z')}"
        stream.write(
            f"commit {ref}\nmark :1\ncommitter {ident} {when}\ndata {len(body)}\n".encode()
            + body + f"\nfrom {parent}\n".encode()
        )
        if start is not None:
            stream.write(f'M 040000 {start} ""\n'.encode())
        write_changes(stream)
        stream.write(b"done\n")
        stream.close()
    except BrokenPipeError:
        pass  # fast-import died; its stderr says why
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait()
    try:
        commit = marks.read_text().split()[1] if marks.exists() else None
    finally:
        marks.unlink(missing_ok=True)
    if proc.returncode != 0:
        _drop_crash_report(git, proc.pid)
        # fast-import creates `ref` only if it does not exist (an existing one would
        # have to be an ancestor of the new commit, which no other run's commit is).
        taken = git.ref_value(ref)
        if commit is not None and taken is not None and taken != commit:
            return None
        raise GitError(["fast-import"], proc.returncode, err.decode(errors="replace"))
    if packs is not None and packs + 1 >= _PACKS_KEPT:
        # git's incremental repack: merges the small packs, leaves the big ones alone
        # (tens of ms, once per _PACKS_KEPT records). Only upkeep: a failure is harmless.
        git.run("repack", "-d", "-q", "--geometric=2", check=False)
        # Experiment refs too: thousands of loose ref files make every `for-each-ref`
        # (each show, gate and index refresh) read as many files.
        git.run("pack-refs", "--all", check=False)
    return commit


def _pack_dir(root: Path) -> Path | None:
    """The repository's pack folder (also from a linked worktree), or None if unusual."""
    dot = root / ".git"
    try:
        if dot.is_dir():
            git_dir = dot
        else:  # a linked worktree: `.git` names its folder, whose `commondir` names ours
            private = Path(dot.read_text().removeprefix("gitdir:").strip())
            private = private if private.is_absolute() else root / private
            git_dir = private / (private / "commondir").read_text().strip()
    except OSError:
        return None
    pack_dir = git_dir / "objects" / "pack"
    return pack_dir if pack_dir.is_dir() else None


def _count_packs(pack_dir: Path | None) -> int | None:
    try:
        return None if pack_dir is None else sum(
            name.endswith(".pack") for name in os.listdir(pack_dir))
    except OSError:
        return None


def _drop_crash_report(git: Git, pid: int) -> None:
    """Remove the `fast_import_crash_<pid>` report a failed fast-import leaves in `.git`."""
    proc = git.run("rev-parse", "--path-format=absolute", "--git-dir", check=False)
    if proc.returncode == 0:
        (Path(proc.stdout.decode().strip()) / f"fast_import_crash_{pid}").unlink(missing_ok=True)
