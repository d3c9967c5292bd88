"""`tether status`: which stages would run, and why, without running them."""

from __future__ import annotations

import argparse
from typing import Any

from tether.execute.runner import RunOptions, render_plan, run


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="show which stages would run and why",
        description="Plan the pipeline against tether.lock and print, per stage, whether it "
        "would run and the reason. Runs and records nothing (same as `tether run --dry`).",
    )
    parser.add_argument("stages", nargs="*", metavar="STAGE")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="[FILE:][+]KEY=VALUE")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    result = run(args.cwd, RunOptions(targets=args.stages, overrides=args.overrides, dry=True))
    print(render_plan(result.plan))
    return 0
