"""Data inputs tracked by tether: `tether add PATH` and the pointer files it commits.

A tracked file or folder stays out of git (it is git-ignored); a small committed
pointer `PATH.tether` names its content by its cache key:

    # tether data pointer: `tether checkout` restores data/raw.csv from the cache
    path: raw.csv
    key: b3:5fb9...
    size: 1043
    files: 1

`path` is relative to the pointer's folder (so a moved folder keeps working). The
content lives in the repository's one cache and, after `tether push`, on the artifact
remote; `tether checkout`, `--temp` runs and queue workers materialize it from there.
Pointers come from commits other people pushed: every path passes the path guard.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING

from tether.errors import UnsafePathError, UsageError
from tether.pathguard import overlaps
from tether.structs import struct

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore
    from tether.cache.remote import Remote
    from tether.gitstore.git import Git
    from tether.spec import Pipeline

POINTER_SUFFIX = ".tether"
_HEADER = "# tether data pointer: `tether checkout` restores {path} from the cache\n"


@struct(frozen=True)
class DataPointer:
    """One tracked input: where it goes (relative to the project root) and its content key."""

    path: str
    key: str
    size: int
    files: int

    @property
    def pointer(self) -> str:
        return self.path + POINTER_SUFFIX


def render_pointer(pointer: DataPointer) -> str:
    name = posixpath.basename(pointer.path)
    return (_HEADER.format(path=pointer.path)
            + f"path: {name}\nkey: {pointer.key}\nsize: {pointer.size}\nfiles: {pointer.files}\n")


def parse_pointer(pointer_path: str, text: str) -> DataPointer:
    """The pointer at `pointer_path` (relative to the root) with content `text`, checked."""
    from tether.cache.objects import valid_key
    from tether.pathguard import check_relpath

    where = f"data pointer {pointer_path!r}"
    check_relpath(pointer_path, where=where)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition(":")
            if not sep:
                raise UsageError(f"{where}: cannot read the line {line!r}",
                                 hint="re-create it with `tether add`")
            fields[name.strip()] = value.strip()
    name = fields.get("path", "")
    if "/" in name or name in ("", ".", "..") or not pointer_path.endswith(POINTER_SUFFIX):
        raise UnsafePathError(f"refused {where}: its path {name!r} must be one file or folder "
                              "name beside the pointer")
    folder = posixpath.dirname(pointer_path)
    path = check_relpath(posixpath.join(folder, name) if folder else name, where=where)
    key = fields.get("key", "")
    if not valid_key(key):
        raise UsageError(f"{where}: {key!r} is not an object key",
                         hint="re-create it with `tether add`")
    try:
        size, files = int(fields.get("size", "0")), int(fields.get("files", "1"))
    except ValueError:
        raise UsageError(f"{where}: size and files must be whole numbers") from None
    return DataPointer(path=path, key=key, size=size, files=files)


def work_tree_pointers(git: Git) -> list[DataPointer]:
    """The pointers in the work tree: committed ones and those added but not committed."""
    out = git.run("ls-files", "-z", "-c", "-o", "--exclude-standard", "--",
                  f":(glob)**/*{POINTER_SUFFIX}").stdout.decode(errors="surrogateescape")
    found = {}
    for rel in sorted(set(filter(None, out.split("\0")))):
        full = git.root / rel
        if full.is_file():
            found[rel] = parse_pointer(rel, full.read_text(errors="replace"))
    return list(found.values())


def commit_pointers(git: Git, commit: str) -> list[DataPointer]:
    """The pointers in a commit's tree (one ls-tree, one cat-file)."""
    out = git.run("ls-tree", "-r", "-z", "--full-tree", commit).stdout.decode(
        errors="surrogateescape")
    entries = []
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob" and mode != "120000" and path.endswith(POINTER_SUFFIX):
            entries.append((path, sha))
    if not entries:
        return []
    data = git.run("cat-file", "--batch",
                   input="".join(f"{sha}\n" for _, sha in entries)).stdout
    pointers, pos = [], 0
    for path, _ in entries:
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        pointers.append(parse_pointer(path, data[end + 1 : end + 1 + size].decode(
            errors="replace")))
        pos = end + 1 + size + 1
    return pointers


def add_data(git: Git, paths: Iterable[str], store: ObjectStore) -> list[DataPointer]:
    """Track each path (relative to the root): cache its content, write its pointer, and
    git-ignore it. Re-adding a changed file updates its pointer."""
    from tether.atomic import write_text
    from tether.layout import STATE_DIR
    from tether.pathguard import check_relpath

    added = []
    for rel in paths:
        check_relpath(rel, where="tether add")
        full = git.root / rel
        if rel == STATE_DIR or rel.startswith(STATE_DIR + "/") or rel.endswith(POINTER_SUFFIX):
            raise UsageError(f"cannot track {rel!r}: it is tether's own file")
        if not full.exists() or full.is_symlink():
            raise UsageError(f"cannot track {rel!r}: no such file or folder",
                             hint="give a path to an existing file or folder (not a symlink)")
        if git.run("ls-files", "-z", "--", rel).stdout:
            raise UsageError(
                f"cannot track {rel!r}: git tracks it already",
                hint=f"stop tracking it in git first: git rm -r --cached -- {quote(rel)}",
            )
        key = store.save(full, link=False)
        files = sum(1 for p in full.rglob("*") if p.is_file()) if full.is_dir() else 1
        size = (sum(p.stat().st_size for p in full.rglob("*") if p.is_file())
                if full.is_dir() else full.stat().st_size)
        pointer = DataPointer(path=rel, key=key, size=size, files=files)
        write_text(git.root / pointer.pointer, render_pointer(pointer), fsync=False)
        _ignore(git.root, rel)
        added.append(pointer)
    return added


def files_to_commit(pointers: Iterable[DataPointer]) -> str:
    """The `git add` arguments that commit what `add_data` wrote: each pointer and the
    .gitignore beside each path, quoted for a shell (paths may hold spaces)."""
    pointers = list(pointers)
    files = [p.pointer for p in pointers]
    files += [posixpath.join(posixpath.dirname(p.path), ".gitignore") for p in pointers]
    return " ".join(quote(f) for f in dict.fromkeys(files))


def ignore_outputs(git: Git, outs: Iterable[str]) -> list[str]:
    """Git-ignore declared outputs as DVC does: `/name` in the .gitignore beside each,
    unless git ignores it already (by that line or any other rule) or tracks it (then
    the user keeps it in git on purpose). Returns the paths newly ignored."""
    pending = [out for out in dict.fromkeys(outs) if out and out != "."
               and not _ignore_line_present(git.root, out)]
    if not pending:
        return []  # the usual case: nothing to ask git
    data = "\0".join(pending).encode(errors="surrogateescape") + b"\0"
    ignored = set(filter(None, git.run("check-ignore", "-z", "--stdin", input=data,
                                       check=False).stdout.decode(errors="surrogateescape")
                         .split("\0")))
    tracked = set(filter(None, git.run("ls-files", "-z", "--", *pending).stdout.decode(
        errors="surrogateescape").split("\0")))
    added = []
    for out in pending:
        if out in ignored or out in tracked or any(t.startswith(out + "/") for t in tracked):
            continue
        _ignore(git.root, out)
        added.append(out)
    return added


def _ignore_file(root: Path, rel: str) -> tuple[Path, str]:
    folder, _, name = rel.rpartition("/")
    return (root / folder / ".gitignore" if folder else root / ".gitignore"), f"/{name}"


def _ignore_line_present(root: Path, rel: str) -> bool:
    ignore, line = _ignore_file(root, rel)
    try:
        return line in ignore.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return False


def _ignore(root: Path, rel: str) -> None:
    """Add `/name` to the .gitignore beside `rel`, unless it is there already."""
    ignore, line = _ignore_file(root, rel)
    text = ignore.read_text() if ignore.exists() else ""
    if line in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    ignore.write_text(text + line + "\n")


def materialize(root: Path, pointers: list[DataPointer], store: ObjectStore, *,
                remote: Callable[[], Remote] | None = None) -> tuple[list[str], int]:
    """Put each pointer's content in place under `root` (already right: left alone),
    pulling missing objects from `remote()` (opened only if one is missing; None: pull
    nothing); (paths restored, objects pulled)."""
    from tether.cache.hashing import StatCache
    from tether.layout import tmp_dir
    from tether.pathguard import WorkTreeGuard

    guard = WorkTreeGuard(root)
    cache = StatCache(tmp_dir(root) / "statcache.db" if (tmp_dir(root)).is_dir() else None)
    try:
        todo = [p for p in pointers
                if cache.hash_path(guard.target(p.path, where=f"data pointer {p.pointer!r}"))
                != p.key]
    finally:
        cache.close()
    pulled = 0
    missing = {p.key for p in todo if not store.has(p.key)}
    if missing and remote is not None:
        from tether.cache.remote import pull_objects

        pulled = len(pull_objects(store, remote(), missing).sent)
    for pointer in todo:
        store.restore(pointer.key, guard.target(pointer.path, where=pointer.pointer))
    return [p.path for p in todo], pulled


def external_deps(pipeline: Pipeline, order: list[str]) -> list[tuple[str, str]]:
    """(stage, dependency) for the dependencies of the stages in `order` that no stage of
    the pipeline produces: what a run needs from outside (git, tracked data, the disk)."""
    produced = {out for stage in pipeline.stages.values() for out in stage.outs}
    found = []
    for name in order:
        for dep in pipeline.stages[name].deps:
            if not any(overlaps(dep, out) for out in produced):
                found.append((name, dep))
    return found
