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
