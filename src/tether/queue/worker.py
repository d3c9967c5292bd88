"""The queue worker: claim an entry, run it in its own worktree and process, report.

Each of `jobs` slots (threads) runs one entry at a time in a child process
(`tether.queue.child`) in a fresh worktree at the entry's snapshot; the runner
records in the shared repository. One heartbeat thread renews every lease,
forwards kill requests (SIGTERM: recorded as interrupted) and abandons attempts
whose lease was taken over (SIGUSR1: stop without recording).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from tether.gitstore.git import Git, clean_env
from tether.gitstore.worktrees import add_worktree, prune_stale, remove_worktree
from tether.layout import queue_dir, worktrees_dir
from tether.logs import bind, get_logger
from tether.queue.base import (
    DEFAULT_QUEUE,
    FAILED,
    RUNNING,
    WAITING,
    Entry,
    EventHook,
    Outcome,
    QueueBackend,
    QueueEvent,
    can_run,
)
from tether.queue.failed import scrub_attempt
from tether.queue.outcome import attempt_outcome
from tether.queue.timing import Tick, Ticker, next_heartbeat_delay
from tether.queue.warm import WarmPool
from tether.status import FAILED as RUN_FAILED
from tether.status import STALLED, TIMEOUT
from tether.structs import field, replace, struct

ON_TERM = ("finish", "requeue")
# Heartbeats failing (state store unreachable) are retried at least this often
# (and at least three times per lease).
HEARTBEAT_BACKOFF_MAX = 5.0
HOST = socket.gethostname()


@struct
class WorkerOptions:
    queues: list[str] = field(default_factory=lambda: [DEFAULT_QUEUE])
    tags: tuple[str, ...] = ()  # what this worker can run (see Entry.requires)
    jobs: int = 1
    lease: float = 60.0
    exit_when_idle: bool = False
    on_term: str = "finish"  # finish the current runs, or requeue them
    poll: float = 0.5
    backoff: float = 2.0  # first retry delay; doubles per failure of the stage
    backoff_max: float = 600.0
    clock: Callable[[], float] = time.time
    on_event: EventHook | None = None
    python: str = sys.executable
    warm: bool = True  # start each slot's next run process ahead of time (queue.warm)
    on_tick: Tick | None = None  # called with the time every tick_every s (schedules)
    tick_every: float = 1.0


@struct
class WorkerSummary:
    ran: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@struct
class _Active:
    entry: Entry
    proc: subprocess.Popen[bytes]
    killed: bool = False
    abandoned: bool = False


class Worker:
    """Runs entries of `options.queues` until drained (or idle, with exit_when_idle)."""

    def __init__(self, root: Path, backend: QueueBackend, options: WorkerOptions) -> None:
        self.root = root
        self.git = Git(root)
        self.backend = backend
        self.options = options
        self.id = f"{HOST}:{os.getpid()}"
        self.draining = threading.Event()
        self.requeue_on_stop = options.on_term == "requeue"
        self.summary = WorkerSummary()
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.ticker = Ticker(options.on_tick, options.tick_every, options.clock)
        # Run processes started ahead of time (queue.warm): see warm_up().
        self._warm: WarmPool | None = None

    def warm_up(self) -> None:
        """Keep one run process started ahead of time per slot (if options.warm)."""
        if self.options.warm and self._warm is None:
            self._warm = WarmPool(self.options.python, self.root, self.options.jobs)
            for _ in range(self.options.jobs):
                self._warm.fill_later()

    def cool_down(self) -> None:
        """Stop the processes warm_up() started and not used."""
        if self._warm is not None:
            self._warm.close()
            self._warm = None

    # -- lifecycle --------------------------------------------------------

    def run(self) -> WorkerSummary:
        """Work until drained or idle; SIGTERM/SIGINT drain when run in the main thread."""
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        self.sweep_worktrees()
        self.warm_up()
        beat = threading.Thread(target=self._heartbeats, daemon=True)
        beat.start()
        self.ticker.start()
        slots = [threading.Thread(target=self._slot, daemon=True) for _ in range(self.options.jobs)]
        try:
            for slot in slots:
                slot.start()
            for slot in slots:
                while slot.is_alive():
                    slot.join(0.2)
        finally:
            self._done.set()
            self.ticker.stop(5)
            self.cool_down()
            beat.join(2)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sweep_worktrees()
        return self.summary

    def idle(self) -> bool:
        """With `exit_when_idle`: may this worker exit? True once nothing it can run is
        waiting or running in its queues, checked after a last tick (`Ticker.settle`)."""
        return self.ticker.settle(lambda: not runnable_busy(self.backend, self.options))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop(requeue=self.requeue_on_stop or self.draining.is_set())

    def stop(self, *, requeue: bool) -> None:
        """Take no new entries; with `requeue`, abandon current runs back to the queue."""
        self.draining.set()
        self.ticker.stop()
        if requeue:
            self.requeue_on_stop = True
            with self._lock:
                for active in self._active.values():
                    self._signal(active, signal.SIGUSR1)
                    active.abandoned = True

    def _emit(self, kind: str, entry: Entry, detail: str = "",
              data: dict[str, Any] | None = None) -> None:
        if self.options.on_event is not None:
            self.options.on_event(QueueEvent(kind, entry, detail, data=data or {}))

    # -- slots ------------------------------------------------------------

    def _slot(self) -> None:
        with bind(worker=self.id, host=HOST):  # on every line of this slot's thread
            self._take_entries()

    def _take_entries(self) -> None:
        opts = self.options
        while not self.draining.is_set():
            now = opts.clock()
            self.backend.requeue_expired(now)
            entry = self.backend.claim(opts.queues, self.id, now, opts.lease, opts.tags)
            if entry is None:
                if opts.exit_when_idle and self.idle():
                    return
                self.draining.wait(opts.poll)
                continue
            state = self.execute(entry)
            with self._lock:
                self.summary.ran += 1
                self.summary.outcomes[state] = self.summary.outcomes.get(state, 0) + 1

    def execute(self, entry: Entry) -> str:
        """Run one claimed attempt to its end and report it; returns the new state."""
        with bind(**self.context_of(entry)):  # every line about this attempt carries it
            return self._execute(entry)

    def context_of(self, entry: Entry) -> dict[str, Any]:
        """The log context of an attempt (tether.logs.CONTEXT_KEYS)."""
        return {"run_id": entry.run_id, "exp": entry.name, "entry": entry.id,
                "attempt": entry.attempt, "worker": self.id, "queue": entry.queue, "host": HOST}

    def _execute(self, entry: Entry) -> str:
        attempt_dir = self.backend.attempt_dir(entry.id, entry.attempt)
        attempt_dir.mkdir(parents=True, exist_ok=True)
        worktree = worktrees_dir(self.root) / f"queue-{entry.id}-{entry.attempt}"
        result: dict[str, Any] = {}
        try:
            add_worktree(self.git, worktree, entry.snapshot)
            result = self._run_child(entry, attempt_dir, worktree)
        except Exception as exc:  # a broken worktree or snapshot: retried, then failed
            result = {"outcome": "crashed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            remove_worktree(self.git, worktree)
        opts = self.options
        outcome = attempt_outcome(entry, result, opts.clock(), backoff=opts.backoff,
                                  backoff_max=opts.backoff_max,
                                  requeue=self.requeue_on_stop and self.draining.is_set())
        if outcome is None:
            return RUNNING  # the lease was taken over: the new owner reports
        if outcome.state == FAILED and outcome.result_ref is None:
            outcome = self.record_failure(entry, outcome, attempt_dir / "output.log")
        self.backend.finish(entry.id, entry.attempt, self.id, outcome, self.options.clock())
        return outcome.state

    def record_failure(self, entry: Entry, outcome: Outcome, log: Path | None = None) -> Outcome:
        """Record an entry that failed before recording itself as a failed experiment.

        Only while this worker still owns the attempt (a new owner records its own).
        """
        from tether.queue.failed import record_failed_entry

        error = outcome.error or "the run failed before any stage started"
        try:
            beat = self.backend.heartbeat(entry.id, entry.attempt, self.id,
                                          self.options.clock(), self.options.lease)
        except Exception:  # the store is unreachable: a record of this run
            pass  # id is written once at most, whoever writes it
        else:
            if not beat.owned:
                return outcome
        try:
            ref = record_failed_entry(self.git, entry, error, log=log,
                                      now=self.options.clock())
        except Exception as exc:  # the entry still ends failed, with both reasons
            return replace(outcome, error=f"{error}; and it could not be recorded: {exc}")
        return replace(outcome, status=RUN_FAILED, result_ref=ref.ref)

    def _run_child(self, entry: Entry, attempt_dir: Path, worktree: Path) -> dict[str, Any]:
        warm = self._warm.take() if self._warm is not None else None
        if warm is None:
            read_fd, write_fd = os.pipe()
        else:
            read_fd, write_fd = warm.read_fd, warm.channel_fd
        job = {
            "name": entry.name, "baseline": entry.baseline, "run_id": entry.run_id,
            "targets": list(entry.targets), "overrides": list(entry.overrides),
            "command": list(entry.command) if entry.command is not None else None,
            "limits": entry.limits, "message": entry.message, "force": entry.force,
            "reproduces": entry.reproduces,
            "stage_failures": entry.stage_failures, "state_root": str(attempt_dir),
            "lock_path": str(self._lock_path(entry)), "channel_fd": write_fd,
            "log_context": self.context_of(entry),
        }
        job_path = attempt_dir / "job.json"
        job_path.write_text(json.dumps(job))
        env = clean_env({**entry.env, "TETHER_QUEUE_ENTRY": entry.id,
                         "TETHER_ATTEMPT": str(entry.attempt)})
        if warm is not None:
            proc = warm.proc
            warm.start(job_path, worktree / entry.wdir, env, attempt_dir / "output.log")
        else:
            with open(attempt_dir / "output.log", "ab") as log:
                try:
                    proc = subprocess.Popen(
                        # -P: the worktree's `tether.py` (a Python spec) must not hide
                        # the tether package, as the working directory first on sys.path would
                        [self.options.python, "-P", "-m", "tether.queue.child", str(job_path)],
                        cwd=worktree / entry.wdir, stdin=subprocess.DEVNULL, stdout=log,
                        stderr=log, pass_fds=(write_fd,), env=env, start_new_session=True,
                    )
                finally:
                    os.close(write_fd)
        active = _Active(entry, proc)
        with self._lock:
            self._active[entry.id] = active
            if self.draining.is_set() and self.requeue_on_stop:
                self._signal(active, signal.SIGUSR1)
                active.abandoned = True
        result: dict[str, Any] = {}
        try:
            with os.fdopen(read_fd, "rb") as channel:
                for line in channel:
                    message = json.loads(line)
                    kind = message.pop("kind")
                    if kind == "result":
                        result = message
                    elif kind in (STALLED, TIMEOUT, "reminder"):
                        self._emit(kind, entry, f"{message.get('stage')}: {message['detail']}")
                    else:  # the run's "started" also says its stages' `expected`
                        self._emit("stage", entry, f"{kind} {message.get('stage') or ''}",
                                   {"expected": message.get("expected") or {}})
            code = proc.wait()
        finally:
            with self._lock:
                self._active.pop(entry.id, None)
            scrub_attempt(self.root, entry, attempt_dir)
        if not result:
            result = {"outcome": "crashed", "error": f"the run process died (exit {code})"}
        result["killed"] = active.killed
        result["abandoned"] = active.abandoned
        return result

    # -- heartbeats and kills ---------------------------------------------

    def _heartbeats(self) -> None:
        """Renew every lease until the worker is done; survives any state-store outage.

        A failed renewal is logged and retried with backoff (at most `HEARTBEAT_BACKOFF_MAX`
        apart), so the loop resumes as soon as the store answers again. If the outage
        outlasted a lease and someone requeued the entry meanwhile, the first renewal
        after it reports the entry as not owned and the attempt is abandoned (fenced).
        """
        interval = max(0.05, min(self.options.lease / 3, 1.0))
        cap = min(HEARTBEAT_BACKOFF_MAX, self.options.lease / 3)
        delay = interval
        self.announce()
        while not self._done.wait(delay):
            ok = self.beat_once() & self.announce()
            delay = next_heartbeat_delay(delay, ok, interval, cap)
        with contextlib.suppress(Exception):  # else its announcement expires by itself
            self.backend.retire_worker(self.id)

    def announce(self) -> bool:
        """Renew this worker's presence (`tether_workers`); False if the store failed."""
        try:
            self.backend.announce_worker(self.id, self.options.queues, self.options.clock(),
                                         self.options.lease, self.options.tags)
        except Exception:  # an outage: beat_once() says so, and the next round retries
            return False
        return True

    def beat_once(self) -> bool:
        """Renew the lease of every active attempt; False if the store failed for any."""
        with self._lock:
            active = list(self._active.values())
        ok = True
        for item in active:
            try:
                beat = self.backend.heartbeat(item.entry.id, item.entry.attempt, self.id,
                                              self.options.clock(), self.options.lease)
            except Exception as exc:  # a broker or state-store outage: retried, never fatal
                if ok:
                    get_logger("tether.queue.worker").warning(
                        "heartbeat_failed", **self.context_of(item.entry),
                        error=f"{type(exc).__name__}: {exc}", retrying=True)
                ok = False
                continue
            if not beat.owned and not item.abandoned:
                item.abandoned = True
                self._signal(item, signal.SIGUSR1)
            elif beat.kill_requested and not item.killed:
                item.killed = True
                self._signal(item, signal.SIGTERM)
        return ok

    @staticmethod
    def _signal(active: _Active, sig: int) -> None:
        if active.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                active.proc.send_signal(sig)

    # -- worktrees --------------------------------------------------------

    def _lock_path(self, entry: Entry) -> Path:
        path = queue_dir(self.root) / "locks" / f"{entry.id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def sweep_worktrees(self) -> None:
        """Remove the worktrees of attempts and `--temp` runs whose process was killed."""
        prune_stale(self.git, worktrees_dir(self.root))


def runnable_busy(backend: QueueBackend, options: WorkerOptions) -> bool:
    """Is anything this worker could run waiting or running in its queues? (An entry
    running elsewhere counts: it comes back if its worker dies.)"""
    busy = backend.entries(states=(*WAITING, RUNNING), queues=options.queues)
    return any(can_run(entry.requires, options.tags) for entry in busy)
