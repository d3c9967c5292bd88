"""`tether run`: run the pipeline (or a bare command) and record it as an experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import RunFailed, UsageError
from tether.status import STALLED, SUCCESS, TIMEOUT

if TYPE_CHECKING:
    from tether.cli.progress import ProgressBar
    from tether.execute.facts import RunFacts
    from tether.execute.runner import RunEvent
    from tether.feedback.listeners import RunListener


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run the pipeline or `-- CMD ARGS...` and record it as an experiment",
        description="Run the stages whose inputs changed (or a bare command after --) under "
        "supervision, and record the run, whatever its outcome, as one commit on "
        "refs/tether/exps/<baseline>/<name>.",
    )
    parser.add_argument("stages", nargs="*", metavar="STAGE",
                        help="run only these stages (and what they depend on)")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="[FILE:][+]KEY=VALUE",
                        help="override a param (value typed as YAML); +KEY adds a new key")
    parser.add_argument("-n", "--name", help="experiment name (default: a fresh adjective-noun)")
    parser.add_argument("-m", "--message", default="", help="a note stored with the experiment")
    parser.add_argument("--force", action="store_true", help="run every stage, changed or not")
    parser.add_argument("--dry", action="store_true",
                        help="print what would run and why; run and record nothing")
    parser.add_argument("--temp", action="store_true",
                        help="run in an isolated git worktree (HEAD + uncommitted changes)")
    parser.add_argument("--wait", action="store_true",
                        help="if another in-place run of this work tree is in progress, wait "
                        "for it to end instead of failing (exit 13); with --push: wait for "
                        "the pushed run's result, pull it and gate it (exit codes as `tether "
                        "gate`)")
    parser.add_argument("--timeout", help="bare command only: total time limit (e.g. 2h)")
    parser.add_argument("--stall-timeout", help="bare command only: kill after this long silent")
    parser.add_argument("--expected", help="bare command only: remind after this long")
    parser.add_argument("--metrics", action="append", metavar="FILE",
                        help="bare command only: a metrics file it writes (repeatable; "
                        "default metrics.json), relative to the current directory")
    parser.add_argument("--plots", action="append", metavar="FILE",
                        help="bare command only: a plots file it writes (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not echo stage output")
    parser.add_argument("--no-run-cache", action="store_true",
                        help="run changed stages even if an earlier run with the same inputs "
                        "could be restored from the cache")
    parser.add_argument("--queue", nargs="?", const="default", default=None, metavar="NAME",
                        help="queue the run (default queue: default) instead of running it; "
                        "-S key=a,b,c then queues a sweep (the grid of all -S values)")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="with --queue: N copies of each entry, seeds 0..N-1 in TETHER_SEED")
    parser.add_argument("--priority", type=int, default=0, metavar="P",
                        help="with --queue: higher runs first (default 0)")
    parser.add_argument("--require", action="append", default=[], metavar="TAGS",
                        help="with --queue: only a worker with these tags (tether worker "
                        "--tags) may run it; comma-separated, repeatable; added to the "
                        "stages' `require:`")
    parser.add_argument("--push", nargs="?", const="", default=None, metavar="REMOTE",
                        help="run it elsewhere: push HEAD plus uncommitted changes as one "
                        "commit on a new branch exp/NAME (follow.prefix) of REMOTE (default: "
                        "the upstream remote) for a following worker or CI to run; your "
                        "branches and HEAD are untouched. STAGEs go in a Tether-Stages trailer")
    parser.set_defaults(handler=handle)


def _split_command(args: argparse.Namespace) -> list[str] | None:
    command: list[str] | None = args.passthrough
    if command is None:
        return None
    if not command:
        raise UsageError("nothing after `--`", hint="write `tether run -- python train.py`")
    return command


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The bare command's settings: time limits, and the metrics and plots files it writes."""
    limits: dict[str, Any] = {}
    for option in ("metrics", "plots"):
        if getattr(args, option):
            limits[option] = list(getattr(args, option))
    for option, key in (("timeout", "timeout"), ("stall_timeout", "stall_timeout"),
                        ("expected", "expected")):
        value = getattr(args, option)
        if value is None:
            continue
        from tether.spec.values import parse_duration  # only then: it loads the spec package

        try:
            limits[key] = parse_duration(value)
        except ValueError as exc:
            raise UsageError(f"--{option.replace('_', '-')} {value!r}: {exc}") from None
    return limits


def _print_event(event: RunEvent) -> None:
    err = sys.stderr
    if event.kind == "plan":
        return
    if event.kind == "waiting":
        print(f"tether: waiting for the run in progress in this work tree: {event.detail}",
              file=err, flush=True)
    if event.kind == "stage_start":
        print(f"tether: ▶ {event.stage} ({event.detail})", file=err, flush=True)
    elif event.kind == "stage_restored":
        print(f"tether: ↺ {event.stage} restored from the run cache ({event.detail})",
              file=err, flush=True)
    elif event.kind == "stage_skip":
        print(f"tether: · {event.stage} unchanged, skipped", file=err, flush=True)
    elif event.kind == "stage_end":
        record = event.data["record"]
        took = f" in {record.duration:.1f}s" if record.duration is not None else ""
        mark = "✔" if event.detail == SUCCESS else "✘"
        code = f", exit {record.exit_code}" if record.exit_code not in (None, 0) else ""
        print(f"tether: {mark} {event.stage} {event.detail}{took}{code}", file=err, flush=True)
    elif event.kind == "reminder":
        print(f"tether: ⏰ {event.stage} is taking longer than expected: {event.detail}",
              file=err, flush=True)
    elif event.kind in (STALLED, TIMEOUT):
        print(f"tether: {event.stage} {event.kind}: {event.detail}", file=err, flush=True)
    elif event.kind == "warning":
        print(f"tether: warning: {event.detail}", file=err, flush=True)
    elif event.kind == "data":
        print(f"tether: data {event.detail}", file=err, flush=True)


class _DownloadBar:
    """The progress bar of a data source's download, made when the first bytes arrive
    (most runs download nothing and import no renderer)."""

    def __init__(self) -> None:
        self._bar: ProgressBar | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tether.cli.progress import ProgressBar

            self._bar = ProgressBar("fetch", unit="bytes", erase=True)
        self._bar(done, total)
        if total and done >= total:
            self._bar.close()
            self._bar = None


def handle(args: argparse.Namespace) -> int:
    command = _split_command(args)
    stages_given = args.stages
    limits = _limits(args)
    if limits and command is None:
        raise UsageError(
            "--timeout/--stall-timeout/--expected/--metrics/--plots apply to `-- COMMAND` only",
            hint="set timeout, stall_timeout, expected, metrics and plots per stage in "
            "tether.yaml")
    if args.push is not None:
        return _push(args, command, limits)
    if args.queue is not None or args.repeat is not None:
        return _enqueue(args, command, limits)
    if args.require:
        raise UsageError("--require goes with --queue: it says which workers may run the entry",
                         hint=f"tether run --queue --require {','.join(args.require)}")
    if any("," in text for text in args.overrides):  # else nothing imported
        from tether.queue.sweep import in_place_notes

        for note in in_place_notes(args.overrides):
            print(f"tether: note: {note}", file=sys.stderr)
    # git starts answering the run's questions now, while Python imports the runner
    # (imported here: `tether run --queue` only snapshots and enqueues).
    from tether.execute.facts import RunFacts

    facts = None if args.dry else RunFacts(args.cwd)
    from tether.execute.runner import RunContext, RunOptions, render_plan, run

    listener = None if facts is None else _feedback(facts)

    options = RunOptions(
        targets=stages_given,
        overrides=args.overrides,
        name=args.name,
        message=args.message,
        force=args.force,
        dry=args.dry,
        temp=args.temp,
        command=command,
        echo=None if args.quiet else sys.stdout.buffer,
        on_event=_print_event if listener is None else listener,
        argv=args.argv,
        command_limits=limits,
        no_run_cache=args.no_run_cache,
        wait=args.wait,
        progress=_DownloadBar(),
    )
    try:
        result = run(args.cwd, options, RunContext(facts=facts))
        if listener is not None and result.ref is not None:
            listener.ended(result.record, result.ref.ref, result.ref.commit)
    finally:
        if listener is not None:
            listener.feedback.close(notify_wait())
    if args.dry:
        print(render_plan(result.plan))
        return 0
    record, ref = result.record, result.ref
    assert record is not None and ref is not None
    metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in list(record.metrics.items())[:6])
    summary = f"tether: recorded {record.name} ({record.status}, {record.duration:.1f}s)"
    print(summary + (f": {metrics}" if metrics else ""), file=sys.stderr)
    if record.status != SUCCESS:
        failed = next(s for s in record.stages if s.status == record.status)
        raise RunFailed(
            record.status,
            f"stage {failed.name!r} {record.status}"
            + (f" (exit {failed.exit_code})" if failed.exit_code is not None else "")
            + (f": {failed.error}" if failed.error else "")
            + f"; the run is recorded as {record.name}",
            hint=f"see its log: .tether/runs/{record.id}/logs/{failed.name}.log",
        )
    return 0


def _announce_queued(args: argparse.Namespace, entries: list[Any]) -> None:
    """`dev.tether.run.queued` for each entry, when lifecycle events are configured."""
    from tether.feedback.notify import load_settings
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    settings = load_settings(root)
    if not (settings.sinks or settings.events_file):
        return
    from tether.feedback.notify import RunFacts as Facts
    from tether.feedback.watch import Feedback

    feedback = Feedback(root, settings)
    for entry in entries:
        feedback.queued(entry.run_id or entry.id,
                        Facts(name=entry.name, run_id=entry.run_id, baseline=entry.baseline))
    feedback.close(notify_wait())


def notify_wait() -> float:
    """How long `tether run` waits at exit for notifications still being delivered."""
    import os

    try:
        return max(0.0, float(os.environ.get("TETHER_NOTIFY_WAIT", "3")))
    except ValueError:
        return 3.0


def _feedback(facts: RunFacts) -> RunListener | None:
    """The notifications and events listener of this run, if any are configured."""
    try:
        root = facts.state.root
    except Exception:  # an unusable repository is the runner's to report
        return None
    return feedback_listener(root)


def feedback_listener(root: Path) -> RunListener | None:
    """The notifications and events listener of a run in the project at `root`, if any
    are configured (`tether run`, `tether repro`)."""
    from tether.feedback.notify import load_settings

    try:
        settings = load_settings(root)
    except Exception:  # an unusable config is the runner's to report
        return None
    for problem in settings.problems:
        print(f"tether: warning: {problem}", file=sys.stderr)
    if not settings.active:
        return None
    from tether.feedback.listeners import RunListener
    from tether.feedback.watch import Feedback

    return RunListener(Feedback(root, settings), root, forward=_print_event)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _enqueue(
    args: argparse.Namespace, command: list[str] | None, limits: dict[str, float | None]
) -> int:
    """`tether run --queue`: snapshot the workspace once and queue each sweep point."""
    if args.queue is None:
        raise UsageError("--repeat needs --queue", hint="tether run --queue --repeat 3")
    if args.temp:
        raise UsageError("--temp and --queue: queued runs always use their own worktree")
    from tether.queue.base import check_queue_name, check_tags

    check_queue_name(args.queue, "--queue")
    requires = check_tags(args.require, "--require")
    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat {args.repeat}: must be at least 1",
                         hint="--repeat N queues N copies of each entry, seeds 0..N-1")
    # git starts answering now, while Python imports the queue client.
    from tether.execute.facts import RunFacts

    facts = None if args.dry else RunFacts(args.cwd, code=False, snapshot=True)
    from tether.queue.client import QueueRequest, enqueue
    from tether.queue.sweep import expand

    request = QueueRequest(
        targets=args.stages, overrides=args.overrides, name=args.name, message=args.message,
        force=args.force, command=command, limits=limits, queue=args.queue,
        priority=args.priority, repeat=1 if args.repeat is None else args.repeat,
        requires=requires,
    )
    if args.dry:
        for point in expand(request.overrides, request.repeat):
            seed = point.env.get("TETHER_SEED")
            print(" ".join(point.overrides) + (f" TETHER_SEED={seed}" if seed else ""))
        return 0
    entries = enqueue(args.cwd, request, facts=facts,
                      on_warning=lambda text: print(f"tether: warning: {text}", file=sys.stderr))
    for entry in entries:
        print(f"{entry.id}  {entry.name}  {' '.join(entry.overrides)}".rstrip())
    _announce_queued(args, entries)
    needs = entries[0].requires if entries else ()
    print(f"tether: queued {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} on "
          f"{args.queue!r}; run them with `tether worker"
          + (f" --tags {','.join(needs)}`" if needs else "`"), file=sys.stderr)
    return 0


def _push(args: argparse.Namespace, command: list[str] | None,
          limits: dict[str, float | None]) -> int:
    """`tether run --push [REMOTE]`: push the workspace as exp/NAME; with --wait, the result."""
    from tether.feedback.follow import push_for_feedback
    from tether.gitstore.git import Git, find_root

    if command is not None or limits or args.overrides or args.queue is not None or \
            args.repeat is not None or args.temp or args.dry or args.force:
        raise UsageError("--push runs the committed pipeline as it is in your workspace: "
                         "no -- COMMAND, -S, --queue, --repeat, --temp, --dry or --force",
                         hint="change params.yaml (uncommitted changes are pushed too)")
    root = find_root(args.cwd)
    remote, stages = args.push or None, list(args.stages)
    if remote is not None and remote not in Git(root).out("remote").split() and not any(
            mark in remote for mark in ("/", ":")):
        remote, stages = None, [remote, *stages]  # `--push STAGE`: not a remote
    pushed = push_for_feedback(root, remote, args.name, stages, args.message)
    err = sys.stderr
    print(f"tether: pushed {pushed.branch} ({pushed.commit[:10]}) to {pushed.remote}",
          file=err)
    pickers = [f"the CI workflow {path} (if it runs on pushes to {pushed.branch})"
               for path in pushed.pickers]
    pickers.append(f"a following worker: tether worker --follow {pushed.remote}")
    print("tether: it will be run by " + ", or ".join(pickers), file=err)
    if not args.wait:
        print(f"tether: get the result with: tether pull {pushed.remote} --baseline "
              f"{pushed.commit[:10]}  (then tether gate {pushed.name})", file=err, flush=True)
        return 0
    return _wait_and_gate(root, pushed.remote, pushed.commit, pushed.branch)


def _wait_and_gate(root: Path, remote: str, commit: str, branch: str) -> int:
    from tether.cli.gate import finish, render
    from tether.config import list_remotes
    from tether.feedback.follow import wait_for_result
    from tether.feedback.gate import gate_experiments, open_gate
    from tether.share.transfer import pull

    tty = sys.stderr.isatty()

    def progress(elapsed: float) -> None:
        line = f"tether: waiting for the result of {branch} on {remote}... {elapsed:.0f}s"
        if tty:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        elif int(elapsed) % 30 == 0:
            print(line, file=sys.stderr, flush=True)

    refs = wait_for_result(root, remote, commit, progress=progress)
    if tty:
        print(file=sys.stderr)
    artifacts = any(r.default for r in list_remotes(root))
    pull(root, remote, refs, artifacts=artifacts)
    results = gate_experiments(open_gate(root), refs)
    code = 0
    for result in results:
        exp = result.experiment
        print(f"tether: pulled {exp.name} ({exp.status}) recorded against {commit[:10]}",
              file=sys.stderr)
        for note in result.search.notes:
            print(f"tether: {note}", file=sys.stderr)
        print(render(result), flush=True)
    worst = max(results, key=lambda r: r.verdict in ("failed", "regressed", "no-baseline"))
    code = finish(worst, allow_no_baseline=False)
    return code
