"""`tether logs [EXP] [--stage S] [-f]`: the logs of a recorded or running experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tether.cli.skipped import warn_skipped
from tether.errors import ExperimentError
from tether.experiments.manage import find_run_dir, follow_run, recorded_logs
from tether.experiments.resolve import latest_experiment, resolve_experiment
from tether.gitstore.git import Git, find_root
from tether.layout import runs_dir
from tether.record.validate import Skipped


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "logs",
        help="print the stage logs of an experiment (or follow a running one)",
        description="Print the whole log of each stage of experiment EXP (name, commit prefix "
        "or ref; default: the latest under HEAD), as stored in its commit. With -f, EXP may "
        "also be the id (or an id prefix) of a run still going: its live logs are followed "
        "until it is recorded; without EXP, -f follows the newest run.",
    )
    parser.add_argument("exp", nargs="?", metavar="EXP", help="experiment, or run id with -f")
    parser.add_argument("--stage", metavar="S", help="only this stage's log")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="follow a running run's log until it is recorded")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    git = Git(find_root(args.cwd))
    if args.follow:
        run_dir = find_run_dir(git.root, args.exp or "")
        if run_dir is not None and (args.exp is None or not _is_recorded(git, args.exp)):
            return _follow(run_dir, args.stage)
        if args.exp is None:
            raise ExperimentError(f"no run found in {runs_dir(git.root)}")
    if args.exp is None:
        skipped: list[Skipped] = []
        latest = latest_experiment(git, git.head_commit(), skipped=skipped)
        warn_skipped(skipped)
        if latest is None:
            raise ExperimentError("no experiment is recorded against HEAD",
                                  hint="name one: tether logs EXP (`tether show -A` lists them)")
        exp = latest.ref
    else:
        exp = resolve_experiment(git, args.exp)
    logs = recorded_logs(git, exp, args.stage)
    if not logs:
        print(f"tether: {exp.name} has no stage log", file=sys.stderr)
    for log in logs:
        if len(logs) > 1:
            print(f"==> {exp.name} · {log.stage} <==", flush=True)
        sys.stdout.write(log.text)
        if len(logs) > 1 and log.text and not log.text.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def _is_recorded(git: Git, text: str) -> bool:
    try:
        resolve_experiment(git, text)
    except ExperimentError:
        return False
    return True


def _follow(run_dir: Path, stage: str | None) -> int:
    out = sys.stdout.buffer
    current = None
    for name, chunk in follow_run(run_dir, stage):
        if stage is None and name != current:
            out.write(f"==> {run_dir.name} · {name} <==\n".encode())
            current = name
        out.write(chunk)
        out.flush()
    return 0
