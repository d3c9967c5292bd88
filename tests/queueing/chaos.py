"""What a failed chaos test leaves behind: its seed, the entries, the store, the logs.

A chaos run is random; when one fails, the seed alone rarely says why. The test
wraps its rounds in `report.on_failure(...)`: on any failure it writes one file
with the seed (re-run with TETHER_CHAOS_SEED=<seed>), every section the test
collects (entry states, the state store's raw view, every worker's log) and
names that file in the assertion message.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

Sections = Callable[[], dict[str, str]]


def chaos_seed() -> int:
    return int(os.environ.get("TETHER_CHAOS_SEED", time.time_ns() % 10**6))


class ChaosReport:
    def __init__(self, path: Path, seed: int) -> None:
        self.path = path
        self.seed = seed
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """A line for the report (what the test did, when), kept in order."""
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")

    def write(self, error: BaseException, sections: dict[str, str]) -> None:
        parts = [f"seed: {self.seed}  (re-run with TETHER_CHAOS_SEED={self.seed})",
                 "failure:\n" + "".join(traceback.format_exception(error)),
                 "steps:\n" + "\n".join(self.notes)]
        parts += [f"== {title} ==\n{body}" for title, body in sections.items()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n\n".join(parts) + "\n")

    @contextlib.contextmanager
    def on_failure(self, collect: Sections) -> Iterator[None]:
        """Write the report if the block fails, and name it in the assertion message."""
        try:
            yield
        except Exception as error:
            try:
                sections = collect()
            except Exception as exc:  # a broken store is itself worth reporting
                sections = {"collecting the report failed": "".join(
                    traceback.format_exception(exc))}
            self.write(error, sections)
            raise AssertionError(
                f"{error}\nchaos report (seed {self.seed}): {self.path}") from error


def sqlite_rows(db: Path) -> str:
    """Every row of the embedded queue's tables, as the store holds them."""
    if not db.exists():
        return "(no database)"
    lines = []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            cursor = conn.execute(f"SELECT * FROM {table}")  # names from sqlite_master
            names = [d[0] for d in cursor.description]
            lines.append(f"-- {table} ({', '.join(names)})")
            lines += [repr(row) for row in cursor]
    return "\n".join(lines)


def attempt_logs(folder: Path, tail: int = 4000) -> str:
    """The end of every attempt's output under the queue's logs folder."""
    parts = []
    for log in sorted(folder.rglob("output.log")):
        text = log.read_text(errors="replace")
        parts.append(f"--- {log.relative_to(folder)} ---\n{text[-tail:]}")
    return "\n".join(parts) or "(none)"


def redis_rows(url: str, prefix: str) -> str:
    """Every key under `prefix` in the state store, with its value, as Redis holds it."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10, decode_responses=True)
    lines = []
    try:
        for key in sorted(client.scan_iter(match=f"{prefix}*", count=500)):
            kind = client.type(key)
            value: object
            if kind == "hash":
                value = client.hgetall(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(client.smembers(key))
            elif kind == "string":
                value = client.get(key)
            else:
                value = f"({kind})"
            lines.append(f"{key} [{kind}] {value!r}"[:4000])
    finally:
        client.close()
    return "\n".join(lines) or "(no keys)"
