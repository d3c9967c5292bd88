"""What `tether run --queue` needs of the Celery backend, without Celery.

An enqueue writes the entries, and the note that wakes a worker's sweeper (which
sends the Celery wake-ups, see `tether.queue.celery.backend`), into the Redis
state store with redis-py, with the same key layout and writes as `RedisState`
(`tether.queue.celery.keys`). Celery itself is never imported on this path.
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

if TYPE_CHECKING:
    import redis

T = TypeVar("T")


class _Refused(Exception):
    """The state store answered with an error (a wrong password, a bad command)."""


class CeleryEnqueuer:
    """Enqueues into the Celery backend's state store, and reads the names it reserves."""

    def __init__(self, config: CeleryConfig, root: Path, *,
                 reconnect_window: float = 60.0) -> None:
        self.config = config
        self.root = root
        # Where workers on other machines fetch snapshots (None: local workers only).
        self.git_remote = config.git_remote
        self.prefix = keys.key_prefix(config.namespace)
        self.reconnect_window = reconnect_window
        try:
            self.conn: redis.Redis = keys.connect(config.state)
            self.transient = keys.transient_errors()
        except ImportError as exc:
            raise celery_extra_missing(exc) from None

    def _call(self, call: Callable[[], T]) -> T:
        import redis

        def refusing() -> T:
            try:
                return call()
            except (redis.AuthenticationError, redis.ResponseError) as exc:
                raise _Refused(str(exc)) from None  # not transient: do not retry

        try:
            return keys.retrying(refusing, self.config.state, self.reconnect_window,
                                 self.transient)
        except _Refused as exc:
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
