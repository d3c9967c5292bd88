"""Commit a workspace in two git processes: `git status`, `git fast-import`.

The commit starts from the baseline's tree and changes only what differs in the
workspace (from one `git status`), so its cost does not grow with the size of
the repository. The ref appears atomically, and only if the name is still free
(see `tether.gitstore.fastimport`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tether.errors import ExperimentError
from tether.gitstore.experiments import ExperimentRef
from tether.gitstore.fastimport import fast_import_commit, quote_path
from tether.gitstore.git import Git, GitJob
from tether.layout import STATE_DIR, exp_ref

if TYPE_CHECKING:
    from tether.record.redact import Secrets

# Files stored after the workspace's: given the redacted files (path -> secret names).
ExtraFiles = Callable[[dict[str, list[str]]], Mapping[str, Path]]

# Untracked files larger than this are not stored in git (the record lists their names).
UNTRACKED_SIZE_CAP = 10 * 1024 * 1024
_CHUNK = 1 << 20
# Files up to this size are read whole when they must be scanned for secrets.
_WHOLE_CAP = 8 << 20


def start_status(git: Git, workspace: Path) -> GitJob:
    """Start the `git status` that `changed_paths` reads."""
    return git.start(
        "--no-optional-locks", "status", "--porcelain=v1", "-z",
        "--untracked-files=all", "--no-renames", "--ignore-submodules=all", cwd=workspace,
    )


def changed_paths(status: GitJob) -> tuple[list[str], list[str]]:
    """(paths differing from HEAD in index or work tree, untracked non-ignored paths)."""
    out = status.result().stdout.decode(errors="surrogateescape")
    changed: list[str] = []
    untracked: list[str] = []
    for entry in out.split("\0"):
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        (untracked if code == "??" else changed).append(path)
    return changed, untracked


def is_excluded(path: str, excluded: Iterable[str]) -> bool:
    return any(path == ex or path.startswith(ex.rstrip("/") + "/") for ex in excluded)


def _write_file(
    stream: IO[bytes], path: str, full: Path, secrets: Secrets | None = None
) -> list[str]:
    """Emit an `M` command with the file's content; the names of the secrets replaced in it.

    With `secrets`, a file holding a secret value is stored with each such value
    replaced by `[redacted:NAME]`.
    """
    path = quote_path(path)
    try:
        info = full.lstat()
    except FileNotFoundError:
        stream.write(f"D {path}\n".encode(errors="surrogateescape"))
        return []
    if stat.S_ISLNK(info.st_mode):
        target = os.fsencode(os.readlink(full))
        header = f"M 120000 inline {path}\ndata {len(target)}\n"
        stream.write(header.encode(errors="surrogateescape"))
        stream.write(target + b"\n")
        return []
    if not stat.S_ISREG(info.st_mode):
        return []
    mode = "100755" if info.st_mode & 0o111 else "100644"
    if secrets and (info.st_size <= _WHOLE_CAP or _holds_secret(full, secrets)):
        # Read once, scanned and written from memory (a large file only if it holds one).
        data = full.read_bytes()
        names = secrets.names_in(data)
        if names:
            data = secrets.scrub_bytes(data)
        header = f"M {mode} inline {path}\ndata {len(data)}\n"
        stream.write(header.encode(errors="surrogateescape"))
        stream.write(data + b"\n")
        return names
    _write_inline(stream, mode, path, full, info.st_size)
    return []


def _write_inline(stream: IO[bytes], mode: str, path: str, full: Path, size: int) -> None:
    """Emit `M mode inline path` with `size` bytes of `full`, a chunk at a time."""
    stream.write(f"M {mode} inline {path}\ndata {size}\n".encode(errors="surrogateescape"))
    with open(full, "rb", buffering=0) as handle:  # unbuffered: 2 fewer syscalls a file
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            stream.write(chunk)
            remaining -= len(chunk)
        if remaining:  # the file shrank while we read it: keep the stream well-formed
            stream.write(b"\0" * remaining)
    stream.write(b"\n")


def _holds_secret(full: Path, secrets: Secrets) -> bool:
    """Whether the file holds a secret value: a chunked scan, chunks overlapping so
    that a value across a boundary is seen."""
    overlap = max(len(value) for value in secrets.names) * 4  # UTF-8: up to 4 bytes a char
    tail = b""
    with open(full, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            if secrets.names_in(tail + chunk):
                return True
            tail = chunk[-overlap:]
    return False


def _small_file(full: str) -> bool:
    """Whether an untracked file is recorded: a file (symlinks followed) within the cap.

    One `stat`, no Path object: this runs once per untracked file.
    """
    try:
        info = os.stat(full)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size <= UNTRACKED_SIZE_CAP


def _stored_by_git(
    git: Git, workspace: Path, paths: dict[str, None], submodules: Mapping[str, str] | None,
    secrets: Secrets | None,
) -> tuple[list[bytes], dict[str, list[str]]]:
    """The `M` commands for what git itself must turn into tree entries, taken out of `paths`,
    and the secrets replaced in them (path -> names).

    Paths whose attributes make git convert their content (LFS, encryption filters,
    eol) are stored as the blobs `git add` would make (of the scrubbed content, if
    they hold a secret); submodules (`submodules`, path -> checked-out commit, or
    else asked here) as gitlinks to that commit.
    """
    from tether.gitstore.attributes import converted_paths, hash_blobs
    from tether.gitstore.submodules import submodule_state

    if submodules is None:
        submodules = submodule_state(git, workspace).moved
    converted = converted_paths(git, workspace, paths)
    scrubbed: dict[str, bytes] = {}
    redacted: dict[str, list[str]] = {}
    for path in converted if secrets else ():
        assert secrets is not None
        full = workspace / path
        if full.stat().st_size <= _WHOLE_CAP or _holds_secret(full, secrets):
            data = full.read_bytes()
            names = secrets.names_in(data)
            if names:
                scrubbed[path], redacted[path] = secrets.scrub_bytes(data), names
    commands = []
    for path, sha in hash_blobs(git, workspace, converted, scrubbed).items():
        del paths[path]
        mode = "100755" if (workspace / path).stat().st_mode & 0o111 else "100644"
        commands.append(f"M {mode} {sha} {quote_path(path)}\n".encode(errors="surrogateescape"))
    for path, sha in submodules.items():
        paths.pop(path, None)
        commands.append(f"M 160000 {sha} {quote_path(path)}\n".encode(errors="surrogateescape"))
    return commands, redacted


def commit_workspace(
    git: Git,
    workspace: Path,
    *,
    parent: str,
    ref: str,
    message: str,
    ident: str,
    token: str,
    scratch: Path,
    exclude: Iterable[str] = (),
    force_add: Iterable[str] = (),
    extra_files: ExtraFiles | None = None,
    start: str | None = None,
    status: GitJob | None = None,
    secrets: Secrets | None = None,
    submodules: Mapping[str, str] | None = None,
) -> str | None:
    """Commit the workspace (tracked changes, untracked files) on top of `parent`.

    The one way a workspace becomes a commit: runs, queue snapshots and `--temp`
    worktrees all come through here.

    Content is stored as `git add` would store it (clean filters, eol), submodules
    as their checked-out commits (`submodules`: path -> commit, if already known).
    With `secrets`, files holding a secret value are stored with it replaced.
    `extra_files` is called after the workspace's files are written, with those
    redacted files (path -> secret names), and returns more files to store
    (tree path -> source file), e.g. the record saying which files were redacted.

    `ref` is created only if it does not exist yet; None means it already did.
    `start` is the tree (sha) of the commit the workspace was checked out at when
    that is not `parent` (a queued snapshot): the tree then starts from it.
    `token` names the marks file (a run or entry id).
    `status` is `start_status` already started, if the caller could start it early.
    """
    from tether.pathguard import unsafe_reason

    # What fast-import receives must make a tree `git fsck` accepts (a remote with
    # receive.fsckObjects refuses every ref of a push otherwise): no '..', '.git', '/x'.
    exclude = [p for p in exclude if unsafe_reason(p) is None]
    force_add = [p for p in force_add if unsafe_reason(p) is None]
    paths = workspace_paths(workspace, status or start_status(git, workspace),
                            exclude=exclude, force_add=force_add)
    by_git, redacted = _stored_by_git(git, workspace, paths, submodules, secrets)

    def write_changes(stream: IO[bytes]) -> None:
        for out in exclude:
            stream.write(f"D {quote_path(out)}\n".encode(errors="surrogateescape"))
        stream.write(b"".join(by_git))
        for path in paths:
            names = _write_file(stream, path, workspace / path, secrets)
            if names:
                redacted[path] = names
        for tree_path, source in (extra_files(redacted) if extra_files else {}).items():
            # Streamed: a stage log can be far larger than the memory worth spending on it.
            _write_inline(stream, "100644", quote_path(tree_path), source, source.stat().st_size)

    return fast_import_commit(git, ref=ref, parent=parent, message=message, ident=ident,
                              token=token, scratch=scratch, start=start,
                              write_changes=write_changes)


def workspace_paths(
    workspace: Path, status: GitJob, *, exclude: Iterable[str] = (),
    force_add: Iterable[str] = (),
) -> dict[str, None]:
    """What of the workspace a commit stores beyond its start tree, in order: the paths
    differing from HEAD, untracked non-ignored files within UNTRACKED_SIZE_CAP, and
    `force_add` files (ignored or not); nothing under `.tether/` or `exclude`."""
    excluded = [STATE_DIR, *exclude]
    changed, untracked = changed_paths(status)
    paths: dict[str, None] = {}
    for path in changed:
        if not is_excluded(path, excluded):
            paths[path] = None
    root = os.fspath(workspace)
    for path in untracked:
        if not is_excluded(path, excluded) and _small_file(os.path.join(root, path)):
            paths[path] = None
    for path in force_add:
        if (workspace / path).is_file():
            paths[path] = None
    return paths


def record_commit(
    git: Git,
    workspace: Path,
    *,
    baseline: str,
    name: str,
    message: str,
    ident: str,
    run_id: str,
    exclude: Iterable[str] = (),
    force_add: Iterable[str] = (),
    extra_files: ExtraFiles | None = None,
    scratch: Path,
    start: str | None = None,
    status: GitJob | None = None,
    secrets: Secrets | None = None,
    submodules: Mapping[str, str] | None = None,
) -> ExperimentRef:
    """Commit the workspace as experiment `name` on top of `baseline`, atomically."""
    ref = exp_ref(baseline, name)
    commit = commit_workspace(
        git, workspace, parent=baseline, ref=ref, message=message, ident=ident, token=run_id,
        scratch=scratch, exclude=exclude, force_add=force_add, extra_files=extra_files,
        start=start, status=status, secrets=secrets, submodules=submodules,
    )
    if commit is None:
        raise ExperimentError(
            f"experiment name {name!r} is already used under baseline {baseline[:10]}",
            hint="choose another name with -n, or remove the old experiment",
        )
    return ExperimentRef(ref=ref, baseline=baseline, name=name, commit=commit)
