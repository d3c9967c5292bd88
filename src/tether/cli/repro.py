"""`tether repro EXP [--tolerance METRIC=VALUE[%] ...] [--queue [NAME] | --check]`: run an
experiment again from its record and say whether it reproduced."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tether.cli.diff import _fmt, _table
from tether.errors import NotReproduced, RunFailed
from tether.feedback.repro import LAST_MAIN_BUILD, check_target
from tether.feedback.reproverdict import (
    REPRODUCED,
    RUN_FAILED,
    ReproVerdict,
    split_tolerance_options,
    tolerance_text,
)
from tether.queue.base import DEFAULT_QUEUE

MARKS = {"same": "= same", "different": "≠ DIFFERENT", "missing": "? MISSING", "new": "+ NEW"}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "repro",
        help="run an experiment again from its record; did it reproduce?",
        description="Run experiment EXP again from its record alone: its baseline commit "
        "with the uncommitted changes and params it ran with (the experiment's own tree) and "
        "its TETHER_SEED, in "
        "a worktree under .tether/worktrees/, every stage forced and the run-cache off. The "
        "new run is recorded as an experiment named <EXP>-repro whose record says "
        "`reproduces:`. Each metric is compared within its tolerance: --tolerance, else the "
        "one the spec's `metrics:` rules declare, else exact for integers and strings and "
        "a relative 1e-9 for floats. Differences of environment (Python, platform, GPUs, "
        "packages) and of inputs git does not hold are listed next to the verdict. "
        f"EXP may be {LAST_MAIN_BUILD}: the newest successful experiment on the main "
        "branch's history. Exit 0: reproduced; 18: not reproduced (the `not-reproduced` "
        "notification is sent); the run's own code (1, 124, 125, 130) when the "
        "reproduction failed; 5: no such experiment.",
    )
    parser.add_argument("exp", metavar="EXP", nargs="?",
                        help=f"experiment: name, commit prefix, ref, or {LAST_MAIN_BUILD}")
    parser.add_argument("--tolerance", action="append", default=[],
                        metavar="METRIC=VALUE[%]",
                        help="allowed difference for a metric: absolute, or relative with %% "
                        "(repeatable; over the spec's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--queue", nargs="?", const=DEFAULT_QUEUE, default=None, metavar="NAME",
                      help="queue the reproduction on queue NAME (default: default) for a "
                      "worker instead (prints the entry id; the worker records it and sends "
                      "the notification); `--queue EXP` alone is EXP on the default queue")
    mode.add_argument("--check", action="store_true",
                      help="judge EXP, a reproduction already recorded (e.g. by a worker), "
                      "without running anything")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not echo the stages' output")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    if args.exp is None and args.queue not in (None, DEFAULT_QUEUE):
        args.exp, args.queue = args.queue, DEFAULT_QUEUE  # `repro --queue EXP`
    if args.exp is None:
        from tether.errors import UsageError

        raise UsageError("which experiment? give EXP", hint="tether repro last-main-build")
    target = check_target(args.exp)
    tolerances = split_tolerance_options(args.tolerance)
    if args.check and tolerances:
        from tether.errors import UsageError

        raise UsageError("--tolerance and --check: a recorded reproduction keeps the "
                         "tolerances it was run with")
    if args.queue is not None:
        from tether.feedback.repro import enqueue_repro
        from tether.queue.base import check_queue_name

        check_queue_name(args.queue, "--queue")
        entry = enqueue_repro(root, target, tolerances=tolerances, origin="cli",
                              queue=args.queue)
        print(f"queued {entry.name}, a reproduction of {target}, as entry {entry.id} on queue "
              f"{args.queue}; see `tether queue status`, then `tether repro --check "
              f"{entry.name}`")
        return 0
    if args.check:
        from tether.feedback.reproverdict import judge_recorded

        verdict, record = judge_recorded(root, target)
        return _finish(verdict, record.status, args)
    return _run(root, target, tolerances, args)


def _run(root: Any, target: str, tolerances: dict[str, str], args: argparse.Namespace) -> int:
    from tether.cli.run import _print_event, feedback_listener, notify_wait
    from tether.feedback.listeners import notify_reproduction
    from tether.feedback.repro import reproduce

    listener = feedback_listener(root)
    try:
        outcome = reproduce(root, target, tolerances=tolerances,
                            echo=None if args.quiet else sys.stdout.buffer,
                            on_event=_print_event if listener is None else listener)
        if listener is not None:
            listener.ended(outcome.record, outcome.ref, outcome.commit)
    finally:
        if listener is not None:
            listener.feedback.close(notify_wait())
    notify_reproduction(root, outcome.record, outcome.ref, wait=notify_wait())
    return _finish(outcome.verdict, outcome.record.status, args)


def _finish(verdict: ReproVerdict, status: str, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print(render(verdict))
    if verdict.verdict == RUN_FAILED:
        raise RunFailed(status, f"the reproduction {verdict.reproduction['name']!r} did not "
                        f"succeed ({status})",
                        hint=f"tether logs {verdict.reproduction['name']} shows what went wrong")
    if verdict.verdict != REPRODUCED:
        names = ", ".join(m.key for m in verdict.differing) or "the run's status"
        raise NotReproduced(f"{verdict.original['name']!r} did not reproduce: {names}",
                            hint=f"tether diff {verdict.reproduction['name']} "
                            f"{verdict.original['name']} shows both runs side by side")
    return 0


def render(verdict: ReproVerdict) -> str:
    original, new = verdict.original, verdict.reproduction
    parts = [f"{new['name']} reproduces {original['name']} ({original['ref']}): "
             f"{verdict.verdict.upper()}"]
    rows = [[m.key, _fmt(m.original), _fmt(m.reproduced), tolerance_text(m.tolerance),
             m.source, MARKS.get(m.verdict, m.verdict)] for m in verdict.metrics]
    if rows:
        parts.append(_table(["metric", "original", "reproduction", "tolerance", "from",
                             "verdict"], rows, False))
    else:
        parts.append("metrics: none recorded")
    if original["status"] != new["status"]:
        parts.append(f"status: {original['status']} -> {new['status']}")
    if verdict.inputs:
        parts.append("inputs that changed (not in git):\n" + "\n".join(
            f"  {d['what']}: {d['original'][:12]} -> {d['now'][:12]}" for d in verdict.inputs))
    if verdict.environment:
        parts.append("environment differences:\n" + "\n".join(
            f"  {d['what']}: {_fmt(d['original'])} -> {_fmt(d['now'])}"
            for d in verdict.environment))
    else:
        parts.append("environment: no difference (Python, platform, GPUs, packages)")
    return "\n\n".join(parts)
