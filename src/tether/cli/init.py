"""`tether init`: start using tether in a git repository."""

from __future__ import annotations

import argparse
from typing import Any

from tether.gitstore.git import find_root
from tether.project import init_project


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="write a commented tether.yaml and the .tether/ folder",
        description="Write a commented tether.yaml template and the .tether/ folder "
        "(with its ignore rules) at the top of the current git repository.",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing tether.yaml")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    root = find_root(args.cwd)
    for path in init_project(root, force=args.force):
        print(f"created {path.relative_to(root)}")
    print("next: edit tether.yaml, commit, then `tether run`")
    return 0
