"""`tether checkout [EXP]`: restore outputs from the cache, pulling what is missing."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "checkout", help="restore outputs (of tether.lock or an experiment) from the cache",
        description="Put the outputs named by the workspace's tether.lock (or by experiment "
        "EXP's record) in place from the content-addressed cache. Objects missing locally "
        "are pulled from the default artifact remote; every byte is checked against its "
        "hash, and a corrupt object is an error naming it (exit 7).",
    )
    parser.add_argument("experiment", nargs="?", metavar="EXP",
                        help="an experiment name, commit prefix or ref (default: tether.lock)")
    parser.add_argument("-r", "--remote", help="artifact remote to pull from (default: default)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.cli.progress import ProgressBar
    from tether.gitstore.git import find_root
    from tether.share.checkout import checkout

    with ProgressBar("pull", unit="bytes") as bar:
        result = checkout(find_root(args.cwd), args.experiment, remote=args.remote,
                          progress=bar)
    for path in result.restored:
        print(f"restored  {path}")
    pulled = f", {result.pulled} object(s) pulled" if result.pulled else ""
    print(f"tether: {len(result.restored)} output(s) restored, {len(result.unchanged)} "
          f"unchanged (from {result.source}){pulled}", file=sys.stderr)
    return 0
