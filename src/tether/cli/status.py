"""`tether status`: which stages would run, and why, without running them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tether.execute.runner import RunOptions, render_plan, run


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="show which stages would run and why",
        description="Plan the pipeline against tether.lock and print, per stage, whether it "
        "would run and the reason, then whether each declared data source changed at its "
        "source since it was pinned. Runs and records nothing (like `tether run --dry`).",
    )
    parser.add_argument("stages", nargs="*", metavar="STAGE")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="[FILE:][+]KEY=VALUE")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    result = run(args.cwd, RunOptions(targets=args.stages, overrides=args.overrides, dry=True))
    print(render_plan(result.plan))
    _print_sources(args.cwd)
    return 0


def _print_sources(cwd: Path) -> None:
    """Each declared data source: pinned? changed at the source? (one metadata request
    per pinned source; none when the spec declares no `data:`)."""
    from tether.gitstore.git import find_root
    from tether.project import load_project_pipeline

    root = find_root(cwd)
    pipeline = load_project_pipeline(root, None)
    if not pipeline.data:
        return
    from tether.execute.sources import project_access, source_report
    from tether.project import object_store

    for name, state in source_report(root, pipeline, object_store(root), project_access(root)):
        print(f"  data  {name}: {state}")
