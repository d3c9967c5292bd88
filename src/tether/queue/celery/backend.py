"""The Celery queue backend: state in Redis, wake-ups through Celery (Redis or RabbitMQ).

Config: the `queue:` section of `.tether/config.yaml` (see `tether.queue.celery.settings`).

Entries and their transitions live in Redis (`tether.queue.celery.state`), so any
client that knows the URL sees them. A worker is woken for an entry by one Celery
task carrying the entry id, and only workers send those tasks, so a client never
imports Celery: a client that makes entries claimable (enqueue, `tether queue
retry`, a lost worker's requeue seen by `tether queue status`) notes it in the
state store, and the sweeper thread of every worker, blocked on that note, sends
the wake-ups (also for entries queued while no worker ran, when it starts). Inside
a worker (a retrying attempt, with a countdown; a requeue; an early wake-up) the
wake-up is sent at once. The worker side is `tether.queue.celery.app`.
"""

from __future__ import annotations

import importlib.util

# Checked here, without importing Celery, so that every queue command names the extra.
if any(importlib.util.find_spec(name) is None for name in ("celery", "redis")):
    raise ImportError("the Celery queue backend needs Celery and redis-py: install tether[celery]")

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tether.layout import queue_dir
from tether.queue.base import QUEUED, RUNNING, WAITING, Entry, EventHook, Firing, Outcome, can_run
from tether.queue.celery import keys
from tether.queue.celery.settings import CeleryConfig, load_celery_config, push_snapshots
from tether.queue.celery.state import RedisState

# Sends one Celery wake-up per entry (delayed to its not_before); a worker installs it.
Sender = Callable[[Sequence[Entry], float], None]


class CeleryQueue(RedisState):
    """A `QueueBackend`: `RedisState` plus a Celery wake-up per claimable entry.

    Clients leave the sending to workers (`await_wakeup`); a worker sets `sender`.
    """

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
        # Set by a worker: send Celery wake-ups (clients never do).
        self.sender: Sender | None = None

    def entries(
        self, states: Iterable[str] | None = None, queues: Iterable[str] | None = None
    ) -> list[Entry]:
        """Waiting or running ones only (what an idle check asks): read through their
        indexes instead of every entry kept."""
        wanted = None if states is None else set(states)
        if wanted is None or not wanted <= {*WAITING, RUNNING}:
            return super().entries(states, queues)
        ids = self._retrying(lambda: keys.live_ids(self.redis, self.prefix))
        found = [entry for entry in self._fetch_many(ids) if entry.state in wanted]
        if queues is not None:
            names = set(queues)
            found = [entry for entry in found if entry.queue in names]
        return found

    def dispatch(self, entries: Sequence[Entry], now: float) -> None:
        """Send one wake-up per entry now (in a worker, whose `sender` does it)."""
        if self.sender is None:
            raise RuntimeError("Celery wake-ups are sent by tether workers only")
        self.sender(entries, now)
        self.mark_dispatched([entry.id for entry in entries], now)

    def _claimable(self, entries: Sequence[Entry], now: float) -> None:
        """These entries just became claimable: wake a worker (in a worker) or have one woken."""
        if not entries:
            return
        if self.sender is not None:
            self.dispatch(entries, now)
        else:
            self.await_wakeup([entry.id for entry in entries])

    def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        push_snapshots(self.root, self.git_remote, entries)
        super().enqueue(entries, now)  # with the note that wakes a worker's sweeper

    def finish(
        self, entry_id: str, attempt: int, worker: str, outcome: Outcome, now: float
    ) -> bool:
        if self.publisher is not None and outcome.result_ref:
            self.publisher(entry_id, attempt, outcome.result_ref)
        done = super().finish(entry_id, attempt, worker, outcome, now)
        if done and outcome.state in WAITING:
            entry = self.get(entry_id)
            if entry is not None:
                self._claimable([entry], now)
        return done

    def requeue_expired(self, now: float) -> list[Entry]:
        changed = super().requeue_expired(now)
        self._claimable([entry for entry in changed if entry.state == QUEUED], now)
        if self.sender is not None:
            self.dispatch_waiting(now)
        return changed

    def dispatch_waiting(self, now: float, *, stale_after: float | None = None,
                         tags: Sequence[str] = ()) -> list[Entry]:
        """Wake-ups for the waiting entries that need one (in a worker); returns those.

        An entry never woken for (queued by a client) gets one at once. One that
        waited `redispatch_after` since its last (a message lost with a crashed
        broker) gets another — or `stale_after`, when the calling worker has a free
        slot: an entry it could have run has waited that long, so its message is held
        by a worker that died before starting it (or by a busy one); only an entry the
        caller's `tags` can run counts as one it could have run. The wait doubles
        with each re-send, so a long backlog costs a few duplicate messages per entry
        at most, and a duplicate is a no-op (`start()` refuses an entry that is not
        waiting).
        """
        waiting = self.waiting_entries()
        if not waiting:
            return []
        usual = self.config.redispatch_after
        soon = usual if stale_after is None else min(usual, stale_after)
        due = []
        for entry, (at, count) in zip(waiting, self.dispatch_info([e.id for e in waiting]),
                                      strict=True):
            after = soon if can_run(entry.requires, tags) else usual
            if count == 0 or (entry.not_before <= now and
                              now - max(at, entry.not_before) > after * 2 ** max(0, count - 1)):
                due.append(entry)
        if due:
            self.dispatch(due, now)
        return due

    def note_by_hand(self, schedule: str, worker: str, at: float, result: str) -> None:
        self._retrying(lambda: keys.write_by_hand(self.redis, self.prefix, schedule, worker,
                                                  at, result))

    def by_hand(self) -> dict[str, Firing]:
        return self._retrying(lambda: keys.read_by_hand(self.redis, self.prefix))

    def retry(self, entry_id: str, *, name: str, run_id: str, now: float) -> Entry:
        entry = super().retry(entry_id, name=name, run_id=run_id, now=now)
        self._claimable([entry], now)
        return entry


def open_backend(root: Path, on_event: EventHook | None = None) -> CeleryQueue:
    """The Celery backend of the project at `root` (from its `queue:` config)."""
    return CeleryQueue(load_celery_config(root), root, queue_dir(root) / "logs", on_event)


