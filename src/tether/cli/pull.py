"""`tether pull`: experiment refs from a git remote, their artifacts from the artifact remote."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.cli.push import add_selection, render


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "pull", help="pull experiments (refs, outputs, run-cache entries)",
        description="Fetch experiment refs under refs/tether/exps/ in one git fetch, then the "
        "outputs their records reference and their run-cache entries from the default "
        "artifact remote, each checked against its hash. A diverged ref is reported and "
        "left alone unless --force (exit 9). Shallow clones are refused.",
    )
    add_selection(parser, "pull")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.cli.progress import ProgressBar
    from tether.gitstore.git import find_root
    from tether.share.transfer import pull

    with ProgressBar("pull", unit="bytes") as bar:
        report = pull(find_root(args.cwd), args.git_remote, args.experiments,
                      every=args.every, baseline=args.baseline, artifacts=args.artifacts,
                      force=args.force, remote=args.remote, progress=bar)
    if not report.refs and not (args.every or args.experiments or args.baseline):
        print(f"tether: {args.git_remote} has no experiment recorded against HEAD; "
              f"`tether ls-remote {args.git_remote}` lists what it has, `tether pull -A` "
              "takes them all", file=sys.stderr)
    return render(report, "pull")
