"""The queue contract on the embedded SQLite backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from queueing.contract import QueueContract
from tether.queue.base import QueueBackend, QueueEvent
from tether.queue.embedded import EmbeddedQueue


class TestEmbeddedContract(QueueContract):
    @pytest.fixture
    def backend(self, tmp_path: Path, events: list[QueueEvent]) -> Iterator[QueueBackend]:
        queue = EmbeddedQueue(tmp_path / "queue.db", tmp_path / "logs", events.append)
        yield queue
        queue.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    queue = EmbeddedQueue(tmp_path / "queue.db", tmp_path / "logs")
    import sqlite3

    mode = sqlite3.connect(tmp_path / "queue.db").execute("PRAGMA journal_mode").fetchone()
    queue.close()
    assert mode == ("wal",)


def test_a_queue_made_before_requirements_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    from queueing.contract import T0, make_entry

    path = tmp_path / "queue.db"
    old = EmbeddedQueue(path, tmp_path / "logs")
    old.enqueue([make_entry(name="before")], T0)
    old.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE entries DROP COLUMN requires")  # as an older tether wrote it
    db.commit()
    db.close()
    queue = EmbeddedQueue(path, tmp_path / "logs")
    try:
        [entry] = queue.entries()
        assert entry.name == "before" and entry.requires == ()
        claimed = queue.claim(["default"], "w", T0, 60)
        assert claimed is not None and claimed.id == entry.id
    finally:
        queue.close()
