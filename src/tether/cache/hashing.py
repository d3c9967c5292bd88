"""Content hashes of files and directories (BLAKE3), with a stat cache.

A file's key is `b3:<hex>` of its bytes. A directory's key is `b3d:<hex>` of
its manifest: the bytes `relpath\\0filekey\\n` for every file below it, sorted
by path — the same bytes the object store keeps as that directory's manifest
object, so the key names the object. The stat cache remembers
(inode, size, mtime_ns) -> key so unchanged files are not read again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import blake3

from tether import sqlitedb

CHUNK = 1 << 20
# Above this size a file is hashed through mmap with BLAKE3's own threads.
LARGE_FILE = 16 << 20
MMAP_SLICE = 256 << 20
FILE_PREFIX = "b3:"
DIR_PREFIX = "b3d:"

OnBytes = Callable[[int], None]


def hash_file_uncached(path: Path, on_bytes: OnBytes | None = None) -> str:
    """BLAKE3 of a file's bytes; large files use every core, small ones stream."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size >= LARGE_FILE:
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            if on_bytes is None:
                hasher.update_mmap(path)
                return FILE_PREFIX + hasher.hexdigest()
            import mmap

            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    for start in range(0, size, MMAP_SLICE):
                        piece = view[start : start + MMAP_SLICE]
                        hasher.update(piece)
                        piece.release()
                        on_bytes(min(MMAP_SLICE, size - start))
                finally:
                    view.release()
            return FILE_PREFIX + hasher.hexdigest()
        hasher = blake3.blake3()
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
        if on_bytes:
            on_bytes(size)
    return FILE_PREFIX + hasher.hexdigest()


def manifest_bytes(entries: list[tuple[str, str]]) -> bytes:
    """The manifest object of a directory: sorted `relpath\\0key\\n` lines."""
    return "".join(f"{rel}\0{key}\n" for rel, key in sorted(entries)).encode()


def parse_manifest(data: bytes, *, where: str = "a directory manifest") -> list[tuple[str, str]]:
    """The (relative path, key) entries of a directory manifest, each path checked.

    A manifest may come from a shared artifact store: a path that is unsafe (see
    `tether.pathguard`), listed twice, or both a file and a directory is
    refused with UnsafePathError before anything is restored.
    """
    from tether.errors import UnsafePathError
    from tether.pathguard import check_layout, check_relpath

    entries = []
    seen: set[str] = set()
    for line in data.decode(errors="surrogateescape").splitlines():
        rel, _, key = line.partition("\0")
        check_relpath(rel, where=where)
        if rel in seen:
            raise UnsafePathError(f"refused {where}: it lists {rel!r} twice; nothing was written")
        seen.add(rel)
        entries.append((rel, key))
    check_layout([rel for rel, _ in entries], where=where)
    return entries


def manifest_key(entries: list[tuple[str, str]]) -> str:
    return DIR_PREFIX + blake3.blake3(manifest_bytes(entries)).hexdigest()


def is_dir_key(key: str) -> bool:
    return key.startswith(DIR_PREFIX)


class StatCache:
    """(path, inode, size, mtime_ns) -> hash, kept in a small SQLite file."""

    def __init__(self, db_path: Path | None, *, on_bytes: OnBytes | None = None) -> None:
        self._path = db_path
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, str]] = []
        self.on_bytes = on_bytes
        if db_path is not None and db_path.exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        """Connect (creating the file only when there is something to write)."""
        if self._db is None:
            assert self._path is not None
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlitedb.connect(self._path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, inode INTEGER,"
                " size INTEGER, mtime_ns INTEGER, hash TEXT)"
            )
        return self._db

    def _known(self, key: str, st: os.stat_result) -> str | None:
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT inode, size, mtime_ns, hash FROM stat WHERE path = ?", (key,)
        ).fetchone()
        if row and tuple(row[:3]) == (st.st_ino, st.st_size, st.st_mtime_ns):
            return str(row[3])
        return None

    def hash_file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        known = self._known(key, st)
        if known is not None:
            return known
        digest = hash_file_uncached(path, self.on_bytes)
        self._pending.append((key, st.st_ino, st.st_size, st.st_mtime_ns, digest))
        return digest

    def hash_files(self, paths: list[Path], *, jobs: int | None = None) -> list[str]:
        """Keys of many files; the ones not in the stat cache are hashed in parallel."""
        results: list[str | None] = []
        todo: list[tuple[int, Path, str, os.stat_result]] = []
        for i, path in enumerate(paths):
            st = path.stat()
            key = str(path.resolve())
            known = self._known(key, st)
            results.append(known)
            if known is None:
                todo.append((i, path, key, st))
        if len(todo) <= 1:
            for i, path, key, st in todo:
                results[i] = self._remember(key, st, hash_file_uncached(path, self.on_bytes))
        else:
            workers = jobs or min(8, os.cpu_count() or 1)
            from concurrent.futures import ThreadPoolExecutor  # many files only

            with ThreadPoolExecutor(max_workers=workers) as pool:
                digests = pool.map(lambda t: hash_file_uncached(t[1], self.on_bytes), todo)
                for (i, _, key, st), digest in zip(todo, digests, strict=True):
                    results[i] = self._remember(key, st, digest)
        return [r for r in results if r is not None]

    def _remember(self, key: str, st: os.stat_result, digest: str) -> str:
        self._pending.append((key, st.st_ino, st.st_size, st.st_mtime_ns, digest))
        return digest

    def hash_path(self, path: Path) -> str | None:
        """Hash of a file or directory, or None when it does not exist."""
        if path.is_file():
            return self.hash_file(path)
        if path.is_dir():
            return manifest_key(hash_manifest(self, path))
        return None

    def flush(self) -> None:
        if self._path is not None and self._pending:
            db = self._open()
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?)", self._pending
                )
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


def list_files(directory: Path) -> list[str]:
    """Sorted posix paths, relative to `directory`, of every regular file below it."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file():
                found.append(full.relative_to(directory).as_posix())
    return sorted(found)


def hash_manifest(cache: StatCache, directory: Path) -> list[tuple[str, str]]:
    """Sorted (posix relative path, hash) of every file below `directory`."""
    rels = list_files(directory)
    keys = cache.hash_files([directory / rel for rel in rels])
    return list(zip(rels, keys, strict=True))
