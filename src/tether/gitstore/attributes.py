"""Blobs as `git add` stores them: clean filters (LFS, encryption), eol and ident.

fast-import stores the bytes it is given. For a path whose attributes (or
`core.autocrlf`) make git convert content on the way in, recording must store
what `git add` would: a git-lfs pointer, not the 3 MB file; a git-crypt
ciphertext, not the plaintext; LF, not CRLF. Those paths are hashed by git itself
(`git hash-object -w --stdin-paths` applies the filters per path), and the record
names the blob instead of inlining the bytes.

Most repositories convert nothing: a few `stat` calls (no `.gitattributes` near the
recorded paths, no attributes file, no autocrlf in any config file) prove it, so
they pay no git process for this.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from tether.gitstore.git import Git

# The attributes under which git may change content on its way into a blob.
CONVERTING = ("filter", "text", "eol", "crlf", "ident", "working-tree-encoding")
# Config keys that convert content, or could bring such a key or attributes file in.
_CONFIG_WORDS = (b"autocrlf", b"attributesfile", b"include")


def converted_paths(git: Git, workspace: Path, paths: Iterable[str]) -> list[str]:
    """The regular files among `paths` whose content git may convert on add."""
    paths = list(paths)
    if not paths or not may_convert(workspace, paths):
        return []
    files = [p for p in paths if _is_file(workspace / p)]
    if not files:
        return []
    autocrlf = git.start("config", "--get", "core.autocrlf", cwd=workspace)
    listing = git.run(
        "check-attr", "-z", "--stdin", *CONVERTING, input="\0".join(files) + "\0",
        cwd=workspace,
    ).stdout.decode(errors="surrogateescape").split("\0")
    converting = set()
    for i in range(0, len(listing) - 2, 3):
        path, _, value = listing[i : i + 3]
        if value not in ("unspecified", "unset"):
            converting.add(path)
    crlf = autocrlf.result(check=False).stdout.decode().strip().lower()
    if crlf in ("true", "input", "yes", "on", "1"):
        return files  # git guesses text per file: let it
    return [p for p in files if p in converting]


def hash_blobs(
    git: Git, workspace: Path, paths: Iterable[str], contents: Mapping[str, bytes] | None = None
) -> dict[str, str]:
    """path -> sha of the blob `git add` makes of each path (written to the repository).

    `contents` gives the bytes of some paths instead of their files (the filters
    still apply as for that path).
    """
    contents = contents or {}
    paths = list(paths)
    # One process for all; a name --stdin-paths cannot take, or given bytes, one each.
    batch = [p for p in paths if "\n" not in p and p not in contents]
    blobs: dict[str, str] = {}
    if batch:
        names = "".join(f"{p}\n" for p in batch).encode(errors="surrogateescape")
        shas = git.run("hash-object", "-w", "--stdin-paths", input=names, cwd=workspace)
        blobs = dict(zip(batch, shas.stdout.decode().split(), strict=True))
    for path in paths:
        if path not in blobs:
            data = contents[path] if path in contents else (workspace / path).read_bytes()
            blobs[path] = git.out("hash-object", "-w", "--stdin", f"--path={path}", input=data,
                                  cwd=workspace)
    return blobs


def may_convert(workspace: Path, paths: Iterable[str]) -> bool:
    """Whether git could convert any of `paths` on add (False only when it surely won't)."""
    try:
        # Every folder from the top down to each path's own (strings: one path may be
        # one of tens of thousands of untracked files).
        folders = {""}
        for path in paths:
            folder = path.rpartition("/")[0]
            while folder not in folders:
                folders.add(folder)
                folder = folder.rpartition("/")[0]
        top = os.fspath(workspace)
        if any(os.path.exists(os.path.join(top, folder, ".gitattributes")) for folder in folders):
            return True
        git_dir, common = _git_dirs(workspace)
        attribute_files = [common / "info" / "attributes", *_global_attributes()]
        if any(path.exists() for path in attribute_files):
            return True
        for config in [common / "config", git_dir / "config.worktree", *_global_configs()]:
            try:
                text = config.read_bytes().lower()
            except FileNotFoundError:
                continue
            if any(word in text for word in _CONFIG_WORDS):
                return True
    except OSError:
        return True  # an unusual layout: let git decide
    return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def _git_dirs(workspace: Path) -> tuple[Path, Path]:
    """(the work tree's git dir, the repository's common git dir)."""
    dot = workspace / ".git"
    if dot.is_dir():
        return dot, dot
    private = Path(dot.read_text().removeprefix("gitdir:").strip())
    private = private if private.is_absolute() else workspace / private
    commondir = private / "commondir"
    if not commondir.exists():
        return private, private  # e.g. a submodule's git dir
    common = Path(commondir.read_text().strip())
    return private, common if common.is_absolute() else private / common


def _xdg_git() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "git"


def _global_attributes() -> list[Path]:
    # tether's git calls do not pass GIT_ATTR_NOSYSTEM on (git_env): the system file counts.
    return [_xdg_git() / "attributes", Path("/etc/gitattributes"), Path("/usr/etc/gitattributes")]


def _global_configs() -> list[Path]:
    found = []
    if os.environ.get("GIT_CONFIG_GLOBAL"):
        found.append(Path(os.environ["GIT_CONFIG_GLOBAL"]))
    else:
        found += [Path(os.path.expanduser("~")) / ".gitconfig", _xdg_git() / "config"]
    if os.environ.get("GIT_CONFIG_SYSTEM"):
        found.append(Path(os.environ["GIT_CONFIG_SYSTEM"]))
    elif not os.environ.get("GIT_CONFIG_NOSYSTEM"):
        found += [Path("/etc/gitconfig"), Path("/usr/etc/gitconfig")]
    return found
