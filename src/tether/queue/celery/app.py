"""The Celery side of the Celery backend: the app, its one task, and the worker process.

Celery is only the transport that wakes a worker with an entry id. The task
body claims that entry with `start()` — a no-op when it is already running under
a live lease, done or cancelled, so a message redelivered after Redis's
`visibility_timeout` or RabbitMQ's `consumer_timeout` never runs anything twice —
and then runs it with the same `tether.queue.worker.Worker` logic as the
embedded backend (own worktree, child process, heartbeats renewing tether's
lease). Liveness is that lease, never a broker ack.

Only workers send those wake-ups (`install_sender`): clients note in the state
store that entries await one, and each worker's sweeper thread, blocked on that
note, sends them (see `tether.queue.celery.backend`).

A worker in a separate clone fetches the entry's snapshot ref (and any record of
the same run already pushed) from the project's git remote first, and pushes the
experiment ref back before it reports the entry done.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from celery import Celery
    from celery import signals as celery_signals
    from celery.worker import state as celery_worker_state
except ImportError:
    raise ImportError(
        "the Celery queue backend needs Celery and redis-py: install tether[celery]"
    ) from None

from tether.errors import GitError
from tether.gitstore.git import WITH_HOOKS, Git
from tether.layout import EXPS_REFS, exp_ref
from tether.logs import bind, get_logger
from tether.queue.base import FAILED, WAITING, Entry, Outcome
from tether.queue.worker import HOST, Worker, WorkerOptions, WorkerSummary
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.cache.remote import TransferResult
    from tether.queue.celery.backend import CeleryQueue

TASK_NAME = "tether.run_entry"
LOGGER = "tether.queue.celery"
MAX_CELERY_TAGS = 8  # a worker consumes a broker queue per subset of its tags (2**tags)


def celery_queue_name(namespace: str, queue: str, requires: Sequence[str] = ()) -> str:
    """The broker queue that carries wake-ups for entries of tether queue `queue` that
    require exactly `requires`: `tether.<namespace>.<queue>`, plus `+tag` per requirement."""
    return f"tether.{namespace}.{queue}" + "".join(f"+{tag}" for tag in sorted(set(requires)))


def consumed_queues(namespace: str, queues: Sequence[str], tags: Sequence[str]) -> list[str]:
    """The broker queues a worker with `tags` consumes: one per tether queue and subset of
    its tags, so it is only ever woken for entries it can run."""
    from itertools import combinations

    from tether.errors import UsageError

    unique = sorted(set(tags))
    if len(unique) > MAX_CELERY_TAGS:
        raise UsageError(f"--tags: {len(unique)} tags; a Celery worker takes at most "
                         f"{MAX_CELERY_TAGS} (it consumes a broker queue per subset of them)",
                         hint="give the worker only the tags entries actually require")
    subsets = [combo for size in range(len(unique) + 1) for combo in combinations(unique, size)]
    return [celery_queue_name(namespace, queue, subset) for queue in queues for subset in subsets]


def make_app(broker: str, transport_options: dict[str, Any] | None = None) -> Celery:
    """A Celery app on `broker` with tether's one task registered."""
    app = Celery("tether", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_delivery_mode="persistent",
        broker_connection_retry_on_startup=True,
        broker_transport_options=dict(transport_options or {}),
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )

    @app.task(name=TASK_NAME, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_entry(self: Any, entry_id: str) -> str:
        runtime: _Runtime | None = getattr(self.app, "tether_runtime", None)
        if runtime is None:
            raise RuntimeError("tether.run_entry runs only in a `tether worker` process")
        return runtime.run(entry_id)

    return app


class _Sent:
    """What `send_task` hands back for a wake-up: only its id (no result to wait for)."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.ignored = True


def install_sender(backend: CeleryQueue) -> Celery:
    """Let `backend` send Celery wake-ups itself, as a worker does; returns the app to close."""
    app = make_app(backend.config.broker, backend.config.broker_options)

    def send(entries: Sequence[Entry], now: float) -> None:
        for entry in entries:
            delay = max(0.0, entry.not_before - now)
            app.send_task(
                TASK_NAME, args=[entry.id],
                queue=celery_queue_name(backend.namespace, entry.queue, entry.requires),
                countdown=delay or None,
                # The wake-up has no result: without these Celery would set up (and
                # import) a result backend and build an AsyncResult for each send.
                ignore_result=True, result_cls=_Sent,
            )

    backend.sender = send
    return app


@struct
class _Runtime:
    """What the task body needs in this worker process."""

    root: Path
    backend: CeleryQueue
    worker: Worker
    git_remote: str | None
    lease: float
    active: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, entry_id: str) -> str:
        with bind(worker=self.worker.id, host=HOST):  # on every line of this task's thread
            return self._run(entry_id)

    def _run(self, entry_id: str) -> str:
        now = time.time()
        current = self.backend.get(entry_id)
        if current is None:
            return "unknown"
        if current.state in WAITING and current.not_before > now:
            self.backend.dispatch([current], now)  # woken early (clock skew): wake again later
            return "early"
        entry = self.backend.start(entry_id, self.worker.id, now, self.lease,
                                   self.worker.options.tags)
        if entry is None:
            get_logger(LOGGER).info("wakeup_ignored", entry=entry_id, state=current.state,
                                    attempt=current.attempt, run_id=current.run_id)
            return "skipped"
        with self.lock:
            self.active.add(entry.id)
        with bind(**self.worker.context_of(entry)):
            return self._run_started(entry)

    def _run_started(self, entry: Entry) -> str:
        try:
            try:
                self._fetch(entry)
            except GitError as exc:
                outcome = self.worker.record_failure(entry, Outcome(
                    FAILED, error=f"cannot fetch the snapshot from {self.git_remote}: {exc}",
                ))
                self.backend.finish(entry.id, entry.attempt, self.worker.id, outcome,
                                    time.time())
                with self.lock:
                    summary = self.worker.summary
                    summary.ran += 1
                    summary.outcomes[FAILED] = summary.outcomes.get(FAILED, 0) + 1
                return FAILED
            state = self.worker.execute(entry)
            summary = self.worker.summary
            with self.lock:
                summary.ran += 1
                summary.outcomes[state] = summary.outcomes.get(state, 0) + 1
            return state
        finally:
            self.backend.stop_shipping(entry.id, entry.attempt)
            with self.lock:
                self.active.discard(entry.id)
            self.exit_if_idle()

    def exit_if_idle(self) -> bool:
        """With --exit-when-idle: stop the worker (a warm shutdown, as on SIGTERM) once
        it runs nothing and nothing it can run waits or runs elsewhere in its queues."""
        with self.lock:
            if not self.worker.options.exit_when_idle or self.active:
                return False
        if not self.worker.idle():
            return False
        celery_worker_state.should_stop = 0
        return True

    def _fetch(self, entry: Entry) -> None:
        """Bring the snapshot (and a record of this run pushed by an earlier attempt) here."""
        git = Git(self.root)
        if self.git_remote is None:
            return
        have = git.ok("cat-file", "-e", f"{entry.snapshot}^{{commit}}")
        stem = exp_ref(entry.baseline, entry.name)
        refspecs = [f"+{stem}*:{stem}*"]
        if not have:
            refspecs.append(f"+{entry.snapshot_ref}:{entry.snapshot_ref}")
        git.run("fetch", "--quiet", "--no-tags", self.git_remote, *refspecs)

    def publish(self, entry_id: str, attempt: int, result_ref: str) -> None:
        """Push the experiment ref to the git remote, if this worker still owns the attempt."""
        if self.git_remote is None or not result_ref.startswith(EXPS_REFS):
            return
        beat = self.backend.heartbeat(entry_id, attempt, self.worker.id, time.time(), self.lease)
        if not beat.owned:
            return  # the entry was taken over: the new owner publishes its own result
        git = Git(self.root)
        delay = 1.0
        for tries in range(5):
            try:
                git.run("push", "--quiet", self.git_remote, f"{result_ref}:{result_ref}",
                        env=WITH_HOOKS)
                break
            except GitError:
                if tries == 4:
                    raise
                time.sleep(delay)
                delay *= 2
        moved = self._publish_artifacts(result_ref)
        from tether.share.sharelog import PUSH, log_transfer

        log_transfer(PUSH, self.git_remote, [result_ref], artifacts=moved, ref=result_ref)

    def _publish_artifacts(self, result_ref: str) -> TransferResult | None:
        """Outputs go to the artifact remote, so the experiment is restorable anywhere."""
        from tether.errors import TetherError
        from tether.share.transfer import push_artifacts

        try:
            return push_artifacts(self.root, [result_ref])
        except TetherError as exc:  # the run is recorded and published; say what is missing
            get_logger(LOGGER).warning("artifacts_not_pushed", ref=result_ref, error=str(exc))
            return None


def run_worker(root: Path, backend: CeleryQueue, options: WorkerOptions,
               *, loglevel: str = "WARNING") -> WorkerSummary:
    """Serve the Celery queues of `options.queues` until stopped (or idle)."""
    worker = Worker(root, backend, options)
    runtime = _Runtime(root, backend, worker, backend.git_remote, options.lease)
    backend.publisher = runtime.publish
    app = install_sender(backend)
    app.tether_runtime = runtime
    worker.sweep_worktrees()
    stop = threading.Event()
    # Worker.run() starts the heartbeat loop itself; a push-style worker has no run loop.
    beats = threading.Thread(target=worker._heartbeats, daemon=True, name="tether-heartbeats")
    sweeper = threading.Thread(target=_sweep, args=(runtime, options, stop), daemon=True,
                               name="tether-sweep")

    def on_shutdown(**kwargs: Any) -> None:  # on every signal: the second one requeues
        worker.stop(requeue=options.on_term == "requeue" or worker.draining.is_set())

    celery_signals.worker_shutting_down.connect(on_shutdown, weak=False)
    # Celery's own lines go through tether.logs (the root logger's handler), as logfmt.
    celery_signals.setup_logging.connect(_keep_logging, weak=False)
    queues = consumed_queues(backend.namespace, options.queues, options.tags)
    celery_worker = app.Worker(
        hostname=f"tether-{os.getpid()}@{socket.gethostname()}", pool="threads",
        concurrency=options.jobs, queues=queues, loglevel=loglevel, quiet=True,
        without_heartbeat=True, without_mingle=True, without_gossip=True,
        redirect_stdouts=False,
    )
    beats.start()
    sweeper.start()
    worker.ticker.start()  # options.on_tick: the schedules, from the CLI
    worker.warm_up()
    try:
        celery_worker.start()
    finally:
        stop.set()
        worker._done.set()
        worker.ticker.stop(5)
        worker.cool_down()
        celery_signals.worker_shutting_down.disconnect(on_shutdown)
        celery_signals.setup_logging.disconnect(_keep_logging)
        sweeper.join(10)  # it may be blocked on the state store for one interval
        beats.join(5)
        worker.sweep_worktrees()
        app.tether_runtime = None
        backend.publisher = None
        backend.sender = None
        app.close()
    return worker.summary


def _keep_logging(**kwargs: Any) -> None:
    """Connected to Celery's setup_logging signal: Celery then configures no logging."""


def _sweep(runtime: _Runtime, options: WorkerOptions, stop: threading.Event) -> None:
    """Send the wake-ups clients left to workers, requeue expired leases; exit when idle if asked.

    Between rounds it blocks on the state store's wake-up note (at most `interval`), so
    an entry a client queues is dispatched at once; the first round, at start, covers the
    entries queued while no worker ran. With --exit-when-idle, a round that finds nothing
    to run exits (as does the end of this worker's last run), and it looks every
    `options.poll` seconds (an entry running elsewhere may end, and the exit joins it).
    """
    interval = max(0.2, min(options.lease / 3, 5.0))
    # A waiting entry whose wake-up has been out this long while this worker had a free
    # slot: the message went to a worker that died holding it (Celery redelivers it only
    # after the broker's visibility timeout, an hour on Redis). Send another.
    stale_after = max(3 * interval, options.lease)
    backend = runtime.backend
    while not stop.is_set():
        try:
            now = time.time()
            backend.requeue_expired(now)  # also dispatches the waiting that need it
            with runtime.lock:
                free = len(runtime.active) < options.jobs
            if free:
                backend.dispatch_waiting(now, stale_after=stale_after, tags=options.tags)
            if runtime.exit_if_idle():
                return
            # Short waits when exiting once idle: the worker's exit waits for this thread.
            backend.wait_for_wakeup(min(interval, options.poll) if options.exit_when_idle
                                    else interval)
        except Exception as exc:  # a broker or store hiccup: next round
            get_logger(LOGGER).warning("queue_sweep_failed", error=str(exc), retrying=True)
            stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    """`python -m tether.queue.celery.app`: a Celery worker for the project in `--root`.

    It is `tether worker` (which this process becomes, with the same options), so a
    worker started this way notifies and publishes lifecycle events as `tether worker`
    does; notifications live above the queue, which cannot import them.
    """
    import sys

    from tether.gitstore.git import find_root
    from tether.queue.celery.settings import queue_section

    parser = argparse.ArgumentParser(prog="python -m tether.queue.celery.app")
    parser.add_argument("--root", default=".")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--queue", dest="queues", action="append")
    parser.add_argument("--tags", action="append", default=[])
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--exit-when-idle", action="store_true")
    parser.add_argument("--on-term", choices=("finish", "requeue"), default="finish")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    root = find_root(Path(args.root).resolve())
    if queue_section(root).get("backend") != "celery":
        parser.exit(2, f"{parser.prog}: the queue backend of {root} is not celery "
                    "(queue: {backend: celery} in .tether/config.yaml); use `tether worker`\n")
    # -P: started in a project whose tether.py (a Python spec) would hide the package
    command = [sys.executable, "-P", "-m", "tether", "-C", str(root), "worker",
               "-j", str(args.jobs), "--lease", str(args.lease), "--on-term", args.on_term,
               "--log-level", args.loglevel, "--ok-on-failed-runs"]
    for queue in args.queues or ():
        command += ["--queue", queue]
    for tags in args.tags:
        command += ["--tags", tags]
    if args.exit_when_idle:
        command.append("--exit-when-idle")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def __getattr__(name: str) -> Any:
    """`celery -A tether.queue.celery.app worker` looks for an app here: say what to run."""
    if name in ("app", "celery"):
        raise AttributeError(
            "tether's Celery worker needs its own runtime around Celery (lease, heartbeats, "
            "wake-up sweeper, notifications): start it with `tether worker` or "
            "`python -m tether.queue.celery.app --root DIR`, not `celery -A ... worker`")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from tether.queue.celery import app  # the importable module, not this __main__ copy

    raise SystemExit(app.main())
