"""`tether rename EXP NEW`: give an experiment another name."""

from __future__ import annotations

import argparse
from typing import Any

from tether.experiments.manage import rename_experiment
from tether.experiments.resolve import resolve_experiment
from tether.gitstore.git import Git, find_root


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "rename",
        help="rename an experiment",
        description="Move experiment EXP's ref to NEW under the same baseline, atomically; "
        "a name already used there is an error.",
    )
    parser.add_argument("exp", metavar="EXP", help="experiment: name, commit prefix or ref")
    parser.add_argument("new", metavar="NEW", help="the new name")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    git = Git(find_root(args.cwd))
    exp = resolve_experiment(git, args.exp)
    renamed = rename_experiment(git, exp, args.new)
    print(f"renamed {exp.name} to {renamed.name} ({renamed.ref})")
    return 0
