"""`tether branch EXP NAME`: a git branch at an experiment's commit."""

from __future__ import annotations

import argparse
from typing import Any

from tether.experiments.manage import create_branch
from tether.experiments.resolve import resolve_experiment
from tether.gitstore.git import Git, find_root


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "branch",
        help="create a git branch at an experiment's commit",
        description="Create branch NAME pointing at experiment EXP's commit (its parent is "
        "the baseline). HEAD stays where it is; an existing branch is an error.",
    )
    parser.add_argument("exp", metavar="EXP", help="experiment: name, commit prefix or ref")
    parser.add_argument("name", metavar="NAME", help="the new branch")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    git = Git(find_root(args.cwd))
    exp = resolve_experiment(git, args.exp)
    create_branch(git, exp, args.name)
    print(f"created branch {args.name} at {exp.commit[:10]} ({exp.name})")
    return 0
