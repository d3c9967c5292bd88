"""The one guard for paths that come from data: trees, manifests, records, run-cache
entries, `-S FILE:` overrides.

Everything tether writes at a path it read (from an experiment commit a remote
pushed, a manifest in a shared artifact store, a run-cache entry) passes through
here first. The rules follow git's own `verify_path` (with `core.protectNTFS` and
`core.protectHFS`, both on by default in git): a path is refused when it is
empty, absolute, holds a NUL or a backslash, has an empty, `.` or `..` component,
or a component that is `.git` in any spelling a filesystem may fold to it (any
case, trailing dots or spaces, an NTFS stream suffix, the 8.3 name `git~1`, or
Unicode characters HFS+ ignores). A path that passes is then resolved against
the work tree: a directory on its way that is a symlink must lead back inside
the work tree and outside `.git`, so nothing is written through a link an
earlier step (or the same operation) created.
"""

from __future__ import annotations

import os
from pathlib import Path

from tether.errors import UnsafePathError

# Characters HFS+ ignores when comparing names (git's `is_hfs_dotgit` skips them).
_HFS_IGNORED = frozenset(
    "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"
)
_DOTGIT_SPELLINGS = frozenset({".git", "git~1"})


def _folds_to_dotgit(component: str) -> bool:
    """Whether some filesystem would treat `component` as the name `.git`."""
    name = "".join(ch for ch in component if ch not in _HFS_IGNORED)
    name = name.split(":", 1)[0]  # NTFS alternate data stream: `.git::$INDEX_ALLOCATION`
    name = name.rstrip(". ").lower()  # NTFS drops trailing dots and spaces
    return name in _DOTGIT_SPELLINGS


def unsafe_reason(path: str) -> str | None:
    """Why `path` (relative, `/`-separated) may not be written, or None if it may."""
    if not path:
        return "it is empty"
    if "\0" in path:
        return "it contains a NUL byte"
    if "\\" in path:
        return "it contains a backslash (a directory separator on Windows)"
    if path.startswith("/"):
        return "it is absolute"
    for part in path.split("/"):
        if part in ("", "."):
            return "it has an empty or '.' component"
        if part == "..":
            return "it climbs out with '..'"
        if _folds_to_dotgit(part):
            return f"it has a component {part!r} that names git's own directory"
    return None


def check_relpath(path: str, *, where: str) -> str:
    """`path` if it is a safe relative path, else UnsafePathError naming `where`."""
    reason = unsafe_reason(path)
    if reason is not None:
        raise UnsafePathError(
            f"refused path {path!r} from {where}: {reason}; nothing was written",
            hint="this data did not come from tether; if it came from a remote, whoever "
            "can write there can attack you: see docs/security.md",
        )
    return path


def overlaps(path: str, other: str) -> bool:
    """Whether two work-tree paths (`/`-separated, relative) are the same, or one is a
    folder holding the other."""
    return path == other or path.startswith(other + "/") or other.startswith(path + "/")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class WorkTreeGuard:
    """Resolves data-supplied relative paths to places inside one work tree.

    `git_dirs` are directories nothing may be written into even when inside the
    work tree (the repository's git dir and common dir). The checks read the file
    system at the moment of the call, so a symlink created earlier in the same
    operation is taken into account.
    """

    def __init__(self, root: Path, *, git_dirs: tuple[Path, ...] = ()) -> None:
        self.root = Path(root)
        self._real_root = os.path.realpath(root)
        self._forbidden = tuple(os.path.realpath(d) for d in (*git_dirs, Path(root) / ".git"))

    def _check_real(self, real: str, rel: str, where: str, what: str) -> None:
        if not _inside(real, self._real_root):
            raise UnsafePathError(
                f"refused path {rel!r} from {where}: {what} leads outside the work tree "
                f"(to {real}); nothing was written",
                hint="a symlink in the work tree or in this data points elsewhere; "
                "see docs/security.md",
            )
        if any(_inside(real, bad) for bad in self._forbidden):
            raise UnsafePathError(
                f"refused path {rel!r} from {where}: {what} leads into git's directory "
                f"({real}); nothing was written",
                hint="see docs/security.md",
            )

    def target(self, rel: str, *, where: str) -> Path:
        """The absolute path to write `rel` at, after every check.

        The final component itself may be a symlink: writers replace it (write a
        temp file and rename over it, or unlink it first) and never follow it.
        """
        check_relpath(rel, where=where)
        full = self.root / rel
        parent = os.path.realpath(full.parent)
        self._check_real(parent, rel, where, "its directory")
        return full

    def check_symlink(self, rel: str, link_target: str, *, where: str) -> None:
        """Refuse a symlink at `rel` whose target would lead outside the work tree."""
        full = self.target(rel, where=where)
        if not link_target or "\0" in link_target:
            raise UnsafePathError(f"refused symlink {rel!r} from {where}: empty target")
        if os.path.isabs(link_target):
            raise UnsafePathError(
                f"refused symlink {rel!r} -> {link_target!r} from {where}: its target is "
                "absolute; nothing was written",
                hint="symlinks in experiments must point inside the work tree, relatively",
            )
        joined = os.path.normpath(os.path.join(os.path.realpath(full.parent), link_target))
        self._check_real(os.path.realpath(joined), rel, where, f"its target {link_target!r}")
        if any(_folds_to_dotgit(part) for part in link_target.split("/")):
            raise UnsafePathError(
                f"refused symlink {rel!r} -> {link_target!r} from {where}: it points at "
                "git's directory; nothing was written"
            )



def check_layout(paths: list[str], *, where: str) -> None:
    """Refuse a set of paths where one is both a file and a directory of another."""
    seen = set(paths)
    for rel in paths:
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise UnsafePathError(f"refused {where}: {rel!r} lies inside the file "
                                      f"{'/'.join(parts[:depth])!r}; nothing was written")
