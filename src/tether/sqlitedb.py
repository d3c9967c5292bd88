"""Opening tether's SQLite files: WAL mode, safe when several processes open one at once."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """An autocommit connection to `path`, whose database is in WAL mode.

    Switching a database to WAL needs an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy timeout, while another process
    is opening the same new file; so the switch is retried here until `timeout`.
    """
    try:
        return _connect(path, timeout)
    except sqlite3.OperationalError as exc:
        raise _named(path, exc) from exc


def _named(path: Path, exc: sqlite3.OperationalError) -> sqlite3.OperationalError:
    """`exc` naming the database file, and saying so when "disk I/O error" means a full disk."""
    text = str(exc)
    if "disk I/O error" in text and _free_bytes(path.parent) < 65536:
        text = "database or disk is full (no space left on device)"
    return sqlite3.OperationalError(f"{path}: {text}")


def _free_bytes(folder: Path) -> int:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return 1 << 30
    return stats.f_bavail * stats.f_frsize


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                if mode == "wal" or connection.execute(
                    "PRAGMA journal_mode=WAL"
                ).fetchone()[0] == "wal":
                    break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"{path}: could not switch to WAL mode (locked)")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection
