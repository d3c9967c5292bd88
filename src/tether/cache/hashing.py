"""Content hashes of files and directories (BLAKE3), with a stat cache.

A file's hash is `b3:<hex>` of its bytes; a directory's is the hash of its
sorted (relative path, file hash) manifest. The stat cache remembers
(inode, size, mtime_ns) -> hash so unchanged files are not read again.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import blake3

CHUNK = 1 << 20


def hash_file_uncached(path: Path) -> str:
    """BLAKE3 of a file's bytes, streamed in chunks."""
    hasher = blake3.blake3()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return "b3:" + hasher.hexdigest()


class StatCache:
    """(path, inode, size, mtime_ns) -> hash, kept in a small SQLite file."""

    def __init__(self, db_path: Path | None) -> None:
        self._path = db_path
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, str]] = []
        if db_path is not None and db_path.exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        """Connect (creating the file only when there is something to write)."""
        if self._db is None:
            assert self._path is not None
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, inode INTEGER,"
                " size INTEGER, mtime_ns INTEGER, hash TEXT)"
            )
        return self._db

    def hash_file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        if self._db is not None:
            row = self._db.execute(
                "SELECT inode, size, mtime_ns, hash FROM stat WHERE path = ?", (key,)
            ).fetchone()
            if row and tuple(row[:3]) == (st.st_ino, st.st_size, st.st_mtime_ns):
                return str(row[3])
        digest = hash_file_uncached(path)
        self._pending.append((key, st.st_ino, st.st_size, st.st_mtime_ns, digest))
        return digest

    def hash_path(self, path: Path) -> str | None:
        """Hash of a file or directory, or None when it does not exist."""
        if path.is_file():
            return self.hash_file(path)
        if path.is_dir():
            manifest = hash_manifest(self, path)
            hasher = blake3.blake3()
            for rel, digest in manifest:
                hasher.update(f"{rel}\0{digest}\n".encode())
            return "b3d:" + hasher.hexdigest()
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


def hash_manifest(cache: StatCache, directory: Path) -> list[tuple[str, str]]:
    """Sorted (posix relative path, hash) of every file below `directory`."""
    entries: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_file():
                rel = full.relative_to(directory).as_posix()
                entries.append((rel, cache.hash_file(full)))
    entries.sort()
    return entries
