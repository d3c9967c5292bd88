"""`tether ls-remote [GIT_REMOTE]`: experiments on a git remote, without fetching."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ls-remote", help="list the experiments on a git remote without fetching them",
        description="List refs/tether/exps/* on GIT_REMOTE (one git ls-remote), each marked "
        "new (not here), same, or diverged (same name, different commit here).",
    )
    parser.add_argument("git_remote", nargs="?", default="origin", metavar="GIT_REMOTE")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root
    from tether.share.transfer import ls_remote

    for exp in ls_remote(find_root(args.cwd), args.git_remote):
        print(f"{exp.baseline[:10]}  {exp.name:<24} {exp.commit[:10]}  {exp.state}")
    return 0
