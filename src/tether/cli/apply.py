"""`tether apply EXP [--force]`: bring an experiment's files into the workspace."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.experiments.manage import apply_experiment
from tether.experiments.resolve import resolve_experiment
from tether.gitstore.git import Git, find_root


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "apply",
        help="restore an experiment's files into the workspace (HEAD and index untouched)",
        description="Write every file of experiment EXP's tree (except .tether/) into the "
        "workspace and delete the baseline's files it deleted, without moving HEAD or "
        "touching the index. Refuses, listing them, if files with uncommitted changes, or "
        "untracked or git-ignored files, would be overwritten (exit 4), unless --force.",
    )
    parser.add_argument("exp", metavar="EXP", help="experiment: name, commit prefix or ref")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files with uncommitted changes and untracked files")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    git = Git(find_root(args.cwd))
    exp = resolve_experiment(git, args.exp)
    result = apply_experiment(git, exp, force=args.force)
    for path in result.written:
        print(f"updated {path}")
    for path in result.deleted:
        print(f"deleted {path}")
    if result.sparse:
        print(f"tether: left {len(result.sparse)} path(s) outside this sparse checkout alone "
              f"(e.g. {result.sparse[0]}); `git sparse-checkout add` them to apply those too",
              file=sys.stderr)
    print(f"tether: applied {exp.name}: {len(result.written)} updated, "
          f"{len(result.deleted)} deleted", file=sys.stderr)
    from tether.errors import RemoteError
    from tether.share.checkout import checkout

    try:
        outputs = checkout(git.root, exp.ref)
    except RemoteError as exc:
        print(f"tether: the files are applied, but outputs could not be restored: {exc}",
              file=sys.stderr)
        return exc.exit_code
    if outputs.restored:
        print(f"tether: restored {len(outputs.restored)} output(s) from the cache"
              + (f" ({outputs.pulled} pulled)" if outputs.pulled else ""), file=sys.stderr)
    return 0
