"""`tether worker`: run queued experiments until stopped (or idle)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import RunFailed, UsageError
from tether.logs import get_logger
from tether.status import FAILED as RUN_FAILED

if TYPE_CHECKING:
    from collections.abc import Callable

    from tether.feedback.follow import FollowedResult
    from tether.feedback.scheduler import Scheduler
    from tether.feedback.watch import Feedback
    from tether.queue.base import Entry, EventHook, QueueBackend, QueueEvent
    from tether.queue.follow import FollowPass
    from tether.queue.worker import WorkerSummary

# At exit, how long the worker waits for notifications still being delivered.
WORKER_NOTIFY_WAIT = 10.0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "worker",
        help="run queued experiments (each in its own worktree and process)",
        description="Claim entries of the named queues (highest priority first), run each in "
        "a fresh git worktree at its snapshot and record it. A lease renewed by heartbeats "
        "keeps the entry; if this worker dies, another requeues it after the lease expires. "
        "SIGTERM or Ctrl-C drains: no new entries, current runs finish (or are requeued with "
        "--on-term requeue); a second signal requeues them at once. Every worker also "
        "fires the schedules of .tether/config.yaml (`tether schedule`): of any number of "
        "workers, exactly one enqueues each occurrence.",
    )
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="run N entries at a time (default 1)")
    parser.add_argument("--queue", dest="queues", action="append", metavar="NAME",
                        help="take entries of this queue (repeatable; default: default)")
    parser.add_argument("--tags", action="append", default=[], metavar="TAGS",
                        help="what this worker can run (gpu,a100; comma-separated, "
                        "repeatable): it takes only entries whose requirements (run --queue "
                        "--require, a stage's require:) are all among them")
    parser.add_argument("--exit-when-idle", action="store_true",
                        help="exit once nothing it can run is queued, retrying or running in "
                        "its queues; the exit status is 1 if an entry it ran failed (0 if all "
                        "succeeded)")
    parser.add_argument("--ok-on-failed-runs", action="store_true",
                        help="with --exit-when-idle: exit 0 even if entries failed (they are "
                        "recorded as failed experiments either way)")
    parser.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                        help="lease length; heartbeats renew it (default 60)")
    parser.add_argument("--on-term", choices=("finish", "requeue"), default="finish",
                        help="on SIGTERM: finish the current runs (default) or requeue them")
    parser.add_argument("--backoff", type=float, default=2.0, metavar="SECONDS",
                        help="first retry delay of a retryable failure; doubles each time")
    parser.add_argument("--log-level", metavar="LEVEL", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="Celery backend: log the worker's transport (Celery, kombu) at "
                        "LEVEL (DEBUG, INFO, WARNING, ERROR; default WARNING, on stderr); "
                        "tether's own lines are logged from INFO whatever LEVEL")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="also serve `tether metrics` on this port while working")
    parser.add_argument("--metrics-bind", default="0.0.0.0", metavar="ADDR",
                        help="the address --metrics-port listens on (default 0.0.0.0)")
    follow = parser.add_argument_group(
        "following a git remote (push to run, without a CI server)",
        "With --follow the worker fetches REMOTE and, for each new tip of a matching branch "
        "that has no experiment there yet, claims the commit on the remote (so any number "
        "of followers run it once), queues it on the first --queue, runs it, pushes the "
        "experiment ref and outputs back, and gates it against the main build. The "
        "experiment is recorded against the pushed commit itself, named after the branch's "
        "last component. `[skip tether]` in a commit message opts out; a `Tether-Stages: "
        "train,eval` trailer chooses the stages. A commit whose stages `require` tags this "
        "worker lacks (--tags) is left unclaimed for a follower that has them. It also runs "
        "whatever else waits in its "
        "queues, and fires the schedules as every worker does.")
    follow.add_argument("--follow", metavar="REMOTE",
                        help="follow this git remote (a name or URL)")
    follow.add_argument("--branches", dest="branches", action="append", metavar="GLOB",
                        help="follow branches matching GLOB (repeatable; default exp/*)")
    follow.add_argument("--interval", type=float, default=30.0, metavar="SECONDS",
                        help="wait between passes over the remote (default 30)")
    follow.add_argument("--once", action="store_true",
                        help="one pass: fetch, queue, run, push, gate; then exit")
    follow.add_argument("--no-gate", dest="gate", action="store_false",
                        help="push results without gating them")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root
    from tether.queue.client import open_queue
    from tether.queue.worker import Worker, WorkerOptions

    if args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: must be at least 1")
    if args.lease <= 0:
        raise UsageError(f"--lease {args.lease}: must be positive")
    from tether.queue.base import check_queue_name, check_tags

    for name in args.queues or ():
        check_queue_name(name, "--queue")
    tags = check_tags(args.tags, "--tags")
    root = find_root(args.cwd)
    if args.follow is None and (args.once or args.branches):
        raise UsageError("--once and --branches go with --follow REMOTE",
                         hint="tether worker --follow origin --once")
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval}: must be positive")

    log = get_logger("tether.worker")

    def show(event: QueueEvent) -> None:
        if event.kind == "stage":
            return
        entry = event.entry
        level = "warning" if event.kind in ("failed", "retrying", "requeued", "stalled",
                                            "timeout") else "info"
        getattr(log, level)(f"entry_{event.kind}", run_id=entry.run_id, exp=entry.name,
                            entry=entry.id, attempt=entry.attempt, queue=entry.queue,
                            detail=event.detail or None)
        if entry.reproduces is not None and entry.result_ref and event.kind in ("done",
                                                                                "failed"):
            _show_verdict(root, entry.result_ref, entry)

    opened: list[Any] = []  # the backend, once open: where attempts' logs are
    feedback, hook = _listening(
        root, show,
        lambda entry: opened[0].attempt_dir(entry.id, entry.attempt) / "output.log")
    if args.follow is not None:
        return _follow(root, args, hook, feedback, opened, tags)
    backend = open_queue(root, on_event=hook)
    opened.append(backend)
    stop_metrics = _serve_metrics(root, args)
    try:
        scheduler = _scheduler(root, backend, feedback)
        options = WorkerOptions(
            queues=args.queues or ["default"], jobs=args.jobs, lease=args.lease,
            exit_when_idle=args.exit_when_idle, on_term=args.on_term, backoff=args.backoff,
            on_event=hook, on_tick=scheduler.tick, tick_every=scheduler.tick_every, tags=tags,
        )
        from tether.queue.client import backend_name

        if backend_name(root) == "celery":
            # Celery pushes entry ids to this worker; tether's lease still decides liveness.
            from tether.queue.celery.app import run_worker

            level = args.log_level or "WARNING"
            if args.log_level:  # the transport's lines; tether's own stay at INFO
                from tether.logs import configure

                configure(level="INFO", libraries=level)
            summary = run_worker(root, backend, options,  # type: ignore[arg-type]
                                 loglevel=level)
        else:
            summary = Worker(root, backend, options).run()
    finally:
        stop_metrics()
        backend.close()
        if feedback is not None:
            feedback.close(WORKER_NOTIFY_WAIT)
    return _summarize(summary, args)


def _show_verdict(root: Path, ref: str, entry: Any) -> None:
    """A reproduction's verdict, beside the entry's end (`tether repro --check` again)."""
    from tether.errors import TetherError
    from tether.feedback.reproverdict import judge_recorded

    log = get_logger("tether.worker")
    try:
        verdict, _ = judge_recorded(root, ref)
    except TetherError as exc:
        log.warning("no_verdict", entry=entry.id, exp=entry.name, error=str(exc))
        return
    log.info("reproduction_judged", entry=entry.id, exp=entry.name, verdict=verdict.verdict,
             original=verdict.original.get("name"),
             differing=",".join(m.key for m in verdict.differing) or None)


def _scheduler(root: Path, backend: QueueBackend, feedback: Feedback | None) -> Scheduler:
    """The project's schedules, fired by this worker when due (and no other worker did)."""
    from tether.feedback.scheduler import Fired, Scheduler, announce
    from tether.feedback.schedules import iso

    log = get_logger("tether.worker")

    def on_fired(fired: Fired) -> None:
        when = iso(fired.occurrence) if fired.occurrence is not None else "now"
        log.info("schedule_fired", schedule=fired.schedule.name, occurrence=when,
                 result=fired.result)
        announce(feedback, fired)

    def on_problem(text: str) -> None:
        log.warning("schedule_problem", problem=text)

    return Scheduler(root, backend, on_fired=on_fired, on_problem=on_problem)


def _listening(root: Path, show: EventHook, log_path: Callable[[Entry], Path | None],
               ) -> tuple[Feedback | None, EventHook]:
    """The worker's event hook: `show`, plus notifications and lifecycle events when
    the project (or TETHER_NOTIFY / TETHER_EVENTS) asks for them."""
    from tether.feedback.notify import load_settings

    settings = load_settings(root)
    for problem in settings.problems:
        get_logger("tether.worker").warning("notify_settings", problem=problem)
    if not settings.active:
        return None, show
    from tether.feedback.listeners import QueueListener
    from tether.feedback.watch import Feedback

    feedback = Feedback(root, settings)
    listener = QueueListener(feedback, root, log_path=log_path)

    def hook(event: QueueEvent) -> None:
        show(event)
        listener(event)

    return feedback, hook


def _serve_metrics(root: Path, args: argparse.Namespace) -> Callable[[], None]:
    """With --metrics-port, serve `tether metrics` from this process; the stop function."""
    if args.metrics_port is None:
        return lambda: None
    from tether.cli.metrics import check_port
    from tether.obs.metrics import ProjectMetrics, open_for_scrapes, serve

    check_port(args.metrics_port, "--metrics-port")
    backend = open_for_scrapes(root)
    stop = serve(ProjectMetrics(root, backend), args.metrics_port, args.metrics_bind)
    get_logger("tether.worker").info(
        "serving_metrics", url=f"http://{args.metrics_bind}:{args.metrics_port}/metrics")

    def stop_and_close() -> None:
        stop()
        backend.close()

    return stop_and_close


def _summarize(summary: WorkerSummary, args: argparse.Namespace) -> int:
    get_logger("tether.worker").info("worker_stopped", ran=summary.ran,
                                     **dict(sorted(summary.outcomes.items())))
    from tether.queue.base import FAILED

    failed = summary.outcomes.get(FAILED, 0)
    if failed and (args.exit_when_idle or args.once) and not args.ok_on_failed_runs:
        raise RunFailed(RUN_FAILED, f"{failed} entr{'y' if failed == 1 else 'ies'} failed; each is "
                        "recorded as a failed experiment", hint="see `tether queue status` and "
                        "`tether show`; --ok-on-failed-runs makes this exit 0")
    return 0


def _log_pass(log: Any, found: FollowPass, tags: tuple[str, ...]) -> None:
    """What a follow pass skipped, left for better-equipped followers, and queued."""
    for pushed, reason in found.skipped:
        log.info("push_skipped", branch=pushed.branch, commit=pushed.commit[:10],
                 reason=reason)
    for pushed, needs in found.left:
        missing = sorted(set(needs) - set(tags))
        log.info("push_left", branch=pushed.branch, commit=pushed.commit[:10],
                 requires=",".join(needs), missing=",".join(missing),
                 reason=f"its stages require tag(s) {','.join(missing)} this worker "
                 f"lacks (--tags {','.join(tags) or '-'}): left for a follower that "
                 "has them")
    for pushed, problem in found.unreadable:
        log.warning("push_spec_unreadable", branch=pushed.branch,
                    commit=pushed.commit[:10], error=problem,
                    note="claimed as any commit, needing no tags: its run reports the problem")
    for entry in found.entries:
        log.info("push_queued", message=entry.message, commit=entry.snapshot[:10],
                 exp=entry.name, entry=entry.id, run_id=entry.run_id,
                 stages=",".join(entry.targets) or None,
                 requires=",".join(entry.requires) or None)


def _follow(root: Path, args: argparse.Namespace, show: EventHook,
            feedback: Feedback | None, opened: list[Any], tags: tuple[str, ...]) -> int:
    """`tether worker --follow REMOTE`: pass, run, push, gate; again after --interval.

    `show` is the event hook (notifications included); a regression the gate finds
    is notified through `feedback`."""
    import signal
    import threading

    from tether.cli.gate import render
    from tether.feedback.follow import FollowOptions, follow
    from tether.feedback.gate import REGRESSED
    from tether.queue.client import backend_name, open_queue
    from tether.queue.worker import WorkerOptions

    log = get_logger("tether.worker")

    def on_pass(found: FollowPass) -> None:
        _log_pass(log, found, tags)

    def on_result(result: FollowedResult) -> None:
        entry = result.published.entry
        from tether.urls import mask_urls

        log.info("result_pushed", run_id=entry.run_id, exp=entry.name, entry=entry.id,
                 commit=entry.snapshot[:10], status=entry.status,
                 remote=mask_urls(args.follow), push=result.published.status)
        if result.published.note:
            log.warning("result_push_note", exp=entry.name, note=result.published.note)
        if result.gate is not None:
            print(render(result.gate), flush=True)
            if feedback is not None and result.gate.verdict == REGRESSED:
                from tether.feedback.listeners import send_regressed

                names = ", ".join(f"{m.key} ({m.verdict})" for m in result.gate.failing)
                send_regressed(feedback, root, str(entry.result_ref),
                               f"Regressed metrics: {names}")
        elif result.gate_error:
            log.warning("not_gated", exp=entry.name, error=result.gate_error)

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    backend = open_queue(root, on_event=show, backend="embedded")
    opened.append(backend)
    # Schedules are claimed and queued in the project's queue, as by every worker: this
    # embedded one, or the Celery state store every other worker shares.
    project_queue = backend if backend_name(root) == "embedded" else open_queue(root)
    try:
        scheduler = _scheduler(root, project_queue, feedback)
        options = FollowOptions(
            remote=args.follow, patterns=args.branches or [], interval=args.interval,
            once=args.once, gate=args.gate,
            worker=WorkerOptions(queues=args.queues or ["default"], jobs=args.jobs,
                                 lease=args.lease, on_term=args.on_term,
                                 backoff=args.backoff, on_event=show, tags=tags,
                                 on_tick=scheduler.tick, tick_every=scheduler.tick_every))
        try:
            summary = follow(root, backend, options, on_pass=on_pass, on_result=on_result,
                             stop=stop)
        except KeyboardInterrupt:
            return 130
    finally:
        if project_queue is not backend:
            project_queue.close()
        backend.close()
        signal.signal(signal.SIGTERM, previous)
        if feedback is not None:
            feedback.close(WORKER_NOTIFY_WAIT)
    return _summarize(summary, args)
