"""The Celery queue backend: state in Redis, wake-ups through Celery (Redis or RabbitMQ).

Config (`.tether/config.yaml`, committed, so every clone agrees)::

    queue:
      backend: celery
      broker: redis://host:6379/0     # or amqp://user@host:5672/vhost
      state: redis://host:6379/0      # where entries live; default: the broker, if Redis
      namespace: my-project           # default: the repository's root commit
      git_remote: origin              # snapshots go up, results come back (default: origin)
      broker_options: {}              # Celery broker_transport_options
      redispatch_after: 900           # re-send a wake-up for an entry waiting this long

Entries and their transitions live in Redis (`tether.queue.state_redis`), so any
client that knows the URL sees them. Every transition that makes an entry
claimable also sends one Celery task carrying the entry id: enqueue, a retrying
attempt (with a countdown), a lost worker's requeue, `retry`. The worker side is
`tether.queue.celery_app`.
"""

from __future__ import annotations

try:
    import celery  # noqa: F401
    import redis  # noqa: F401
except ImportError:
    raise ImportError(
        "the Celery queue backend needs Celery and redis-py: install tether[celery]"
    ) from None

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from tether.errors import GitError, QueueError
from tether.gitstore.git import Git
from tether.layout import queue_dir
from tether.queue.base import QUEUED, WAITING, Entry, EventHook, Outcome
from tether.queue.celery_app import TASK_NAME, celery_queue_name, make_app
from tether.queue.state_redis import RedisState
from tether.structs import field, struct

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


@struct(frozen=True)
class CeleryConfig:
    broker: str
    state: str
    namespace: str
    git_remote: str | None
    broker_options: dict[str, Any] = field(default_factory=dict)
    redispatch_after: float = 900.0


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def load_celery_config(root: Path) -> CeleryConfig:
    """The `queue:` section of the project config, checked, with defaults filled in."""
    from tether.config import load_config

    section = load_config(root).get("queue") or {}
    broker = section.get("broker")
    if not broker:
        raise QueueError(
            "queue.backend is celery but queue.broker is not set",
            hint="set queue.broker in .tether/config.yaml, e.g. redis://host:6379/0 "
            "or amqp://user@host:5672/vhost",
        )
    broker = str(broker)
    if _scheme(broker) not in REDIS_SCHEMES + AMQP_SCHEMES:
        raise QueueError(f"queue.broker: {broker!r} is neither a redis:// nor an amqp:// URL")
    state = section.get("state")
    if not state:
        if _scheme(broker) in AMQP_SCHEMES:
            raise QueueError(
                "with an amqp:// broker the queue state needs a store: queue.state is not set",
                hint="set queue.state: redis://host:6379/0 in .tether/config.yaml (RabbitMQ "
                "carries the wake-ups; entries, leases and logs live in Redis)",
            )
        state = broker
    state = str(state)
    if _scheme(state) not in REDIS_SCHEMES:
        raise QueueError(f"queue.state: {state!r} is not a redis:// URL",
                         hint="the Celery backend keeps entries in Redis")
    git = Git(root)
    namespace = section.get("namespace") or _root_commit(git)
    if "git_remote" in section:
        git_remote = section["git_remote"] or None
    else:
        git_remote = "origin" if "origin" in git.out("remote").split() else None
    return CeleryConfig(
        broker=broker, state=state, namespace=str(namespace),
        git_remote=str(git_remote) if git_remote else None,
        broker_options=dict(section.get("broker_options") or {}),
        redispatch_after=float(section.get("redispatch_after", 900.0)),
    )


def _root_commit(git: Git) -> str:
    """The first root commit of HEAD: the same in every clone of the project."""
    roots = git.out("rev-list", "--max-parents=0", "HEAD").split()
    return sorted(roots)[0][:12] if roots else "default"


class _Sent:
    """What `send_task` hands back for a wake-up: only its id (no result to wait for)."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.ignored = True


class CeleryQueue(RedisState):
    """A `QueueBackend`: `RedisState` plus one Celery wake-up per claimable entry."""

    def __init__(
        self, config: CeleryConfig, root: Path, logs_root: Path,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__(config.state, config.namespace, logs_root, on_event)
        self.config = config
        self.root = root
        self.git_remote = config.git_remote
        # Set by a worker: push an attempt's experiment ref before reporting it.
        self.publisher: Callable[[str, int, str], None] | None = None
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_app(self.config.broker, self.config.broker_options)
        return self._app

    def dispatch(self, entries: Sequence[Entry], now: float) -> None:
        """Send one wake-up per entry (delayed to its `not_before`)."""
        for entry in entries:
            delay = max(0.0, entry.not_before - now)
            self.app.send_task(
                TASK_NAME, args=[entry.id],
                queue=celery_queue_name(self.namespace, entry.queue),
                countdown=delay or None,
                # The wake-up has no result: without these Celery would set up (and
                # import) a result backend and build an AsyncResult for each send.
                ignore_result=True, result_cls=_Sent,
            )
        self.mark_dispatched([entry.id for entry in entries], now)

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        self._push_snapshots(entries)
        super().enqueue(entries, now)
        try:
            self.dispatch(entries, now)
        except Exception as exc:
            self.remove([entry.id for entry in entries])
            raise QueueError(
                f"cannot reach the broker at {self.config.broker}: {exc}",
                hint="check queue.broker in .tether/config.yaml; nothing was queued",
            ) from None

    def _push_snapshots(self, entries: Sequence[Entry]) -> None:
        if self.git_remote is None:
            return
        refs = sorted({entry.snapshot_ref for entry in entries})
        try:
            Git(self.root).run("push", "--quiet", self.git_remote, *[f"{r}:{r}" for r in refs])
        except GitError as exc:
            raise QueueError(
                f"cannot push the workspace snapshot to git remote {self.git_remote!r}, "
                "so remote workers could not fetch it",
                hint=f"{exc.message}; or set queue.git_remote: null for local workers only",
            ) from None

    def finish(
        self, entry_id: str, attempt: int, worker: str, outcome: Outcome, now: float
    ) -> bool:
        if self.publisher is not None and outcome.result_ref:
            self.publisher(entry_id, attempt, outcome.result_ref)
        done = super().finish(entry_id, attempt, worker, outcome, now)
        if done and outcome.state in WAITING:
            entry = self.get(entry_id)
            if entry is not None:
                self.dispatch([entry], now)
        return done

    def requeue_expired(self, now: float) -> list[Entry]:
        changed = super().requeue_expired(now)
        requeued = [entry for entry in changed if entry.state == QUEUED]
        if requeued:
            self.dispatch(requeued, now)
        self.redispatch_stale(now)
        return changed

    def redispatch_stale(self, now: float) -> list[Entry]:
        """Wake-ups for entries that waited long (a message lost with a crashed broker).

        The wait doubles with each re-send, so a long backlog costs a few duplicate
        messages per entry at most; a duplicate is a no-op (`start()` refuses it).
        """
        waiting = [e for e in self.waiting_entries() if e.not_before <= now]
        if not waiting:
            return []
        stale = [
            entry for entry, (at, count) in zip(
                waiting, self.dispatch_info([e.id for e in waiting]), strict=True)
            if now - at > self.config.redispatch_after * 2 ** max(0, count - 1)
        ]
        if stale:
            self.dispatch(stale, now)
        return stale

    def retry(self, entry_id: str, *, name: str, run_id: str, now: float) -> Entry:
        entry = super().retry(entry_id, name=name, run_id=run_id, now=now)
        self.dispatch([entry], now)
        return entry

    def close(self) -> None:
        super().close()
        if self._app is not None:
            self._app.close()
            self._app = None


def open_backend(root: Path, on_event: EventHook | None = None) -> CeleryQueue:
    """The Celery backend of the project at `root` (from its `queue:` config)."""
    return CeleryQueue(load_celery_config(root), root, queue_dir(root) / "logs", on_event)


