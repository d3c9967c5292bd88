"""What `tether run --queue` needs of the Celery backend, without Celery or redis-py.

An enqueue writes the entries, and the note that wakes a worker's sweeper (which
sends the Celery wake-ups, see `tether.queue.celery.backend`), into the Redis
state store, through the small client of `tether.queue.resp`, with the same key
layout and writes as `RedisState` (`tether.queue.celery.keys`). A TLS state store
(`rediss://`) goes through redis-py instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tether.errors import QueueError
from tether.queue.base import Entry
from tether.queue.celery import keys
from tether.queue.celery.settings import (
    CeleryConfig,
    celery_extra_missing,
    load_celery_config,
    push_snapshots,
)
from tether.queue.resp import ReplyError, RespClient, supports

if TYPE_CHECKING:
    from tether.queue.celery.state import Pipelines

T = TypeVar("T")


class CeleryEnqueuer:
    """Enqueues into the Celery backend's state store, and reads the names it reserves."""

    def __init__(self, config: CeleryConfig, root: Path, *,
                 reconnect_window: float = 60.0) -> None:
        self.config = config
        self.root = root
        self.prefix = keys.key_prefix(config.namespace)
        self.reconnect_window = reconnect_window
        self.conn: RespClient | Pipelines
        if supports(config.state):
            self.conn = RespClient(config.state)
            self.transient: tuple[type[BaseException], ...] = (OSError,)
        else:  # TLS: redis-py speaks it
            try:
                from tether.queue.celery.state import Pipelines
            except ImportError as exc:
                raise celery_extra_missing(exc) from None
            self.conn = Pipelines.from_url(config.state)
            self.transient = Pipelines.TRANSIENT

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return keys.retrying(call, self.config.state, self.reconnect_window,
                                       self.transient)
        except ReplyError as exc:
            raise QueueError(
                f"the queue state store at {keys.redacted(self.config.state)} "
                f"refused a command: {exc}",
                hint="check queue.state (or queue.broker) in .tether/config.yaml, and put "
                "its password in the URL in .tether/config.local.yaml",
            ) from None

    def reserved_names(self, baseline: str) -> set[str]:
        return self._call(lambda: keys.reserved_names(self.conn, self.prefix, baseline))

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        push_snapshots(self.root, self.config.git_remote, entries)
        self._call(lambda: keys.write_entries(self.conn, self.prefix, entries, now))

    def close(self) -> None:
        self.conn.close()


def open_enqueuer(root: Path) -> CeleryEnqueuer:
    """The enqueue side of the Celery backend of the project at `root`."""
    return CeleryEnqueuer(load_celery_config(root), root)
