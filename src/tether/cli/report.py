"""`tether report [EXP...]`: the Markdown report of a change, on the PR and in the job summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tether.feedback.report import HEADLINE

SUMMARY_LIMIT = 1_000_000  # GitHub's job summary takes 1 MiB per step


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "report",
        help="a Markdown report of experiments against the last main build",
        description="Gate each experiment (default: every one recorded against HEAD) against "
        "the last main build, as `tether gate` does, and write a Markdown report: the overall "
        "verdict, then per experiment its metrics (main build, value, change, verdict), the "
        "params that differ, status and duration, failed stages with the tail of their log, "
        "and sparklines of step metrics. The whole report is kept in "
        ".tether/reports/KEY.md; a comment is trimmed to the forge's limit. The exit status "
        "is 0 whatever the verdict (`tether gate` is the check); --comment without a token "
        "or with a read-only one warns and goes on.",
    )
    parser.add_argument("exps", nargs="*", metavar="EXP", help="experiments to report")
    parser.add_argument("--against", metavar="REV",
                        help="the main branch (as for tether gate)")
    parser.add_argument("--md", action="store_true", help="print the Markdown report")
    parser.add_argument("--json", action="store_true", help="print every verdict as JSON")
    parser.add_argument("--comment", action="store_true",
                        help="post it on the pull/merge request, updating the same comment on "
                        "later runs (GitHub: GITHUB_TOKEN; GitLab: GITLAB_TOKEN)")
    parser.add_argument("--summary", action="store_true",
                        help="append it to $GITHUB_STEP_SUMMARY (automatic when that is set)")
    parser.add_argument("--key", default="default",
                        help="which report this is: one comment is kept per key")
    parser.add_argument("--output", metavar="FILE", type=Path,
                        help="where to keep the whole report (default .tether/reports/KEY.md)")
    parser.add_argument("--no-fetch", dest="fetch", action="store_false",
                        help="use only the refs and history already here")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.atomic import write_bytes
    from tether.feedback.gate import open_gate
    from tether.feedback.report import build_report, fit, render, write_full
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    report = build_report(open_gate(root, against=args.against, fetch=args.fetch), args.exps,
                          key=args.key)
    for note in dict.fromkeys(n for r in report.results for n in r.search.notes):
        print(f"tether: {note}", file=sys.stderr)
    full = render(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(args.output, full.encode())
        path = args.output
    else:
        path = write_full(root, args.key, full)
    shown = os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True, default=str))
    elif args.md:
        print(full, end="")
    else:
        print(_terminal(report))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.comment:
        _comment(report.key, full, shown, to_summary=bool(summary_file))
    if summary_file:
        _append(Path(summary_file), fit(full, SUMMARY_LIMIT, shown))
    elif args.summary:
        print("tether: warning: --summary: GITHUB_STEP_SUMMARY is not set; the report is in "
              f"{shown}", file=sys.stderr)
    return 0


def _comment(key: str, full: str, shown: str, *, to_summary: bool) -> None:
    from tether.feedback.forge import detect, post_or_update
    from tether.feedback.report import fit

    target, why = detect(os.environ)
    if target is None:
        print(f"tether: warning: --comment: {why}; the report is in {shown}", file=sys.stderr)
        return
    # Room for the marker that finds the comment again.
    result = post_or_update(target, fit(full, target.limit, shown, reserve=100), key)
    if result.ok:
        print(f"tether: {result.message}" + (f": {result.url}" if result.url else ""),
              file=sys.stderr)
        return
    print(f"tether: warning: {result.message}; the report is in {shown}"
          + (" and the job summary" if to_summary else ""), file=sys.stderr)


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def _terminal(report: Any) -> str:
    from tether.cli.gate import render

    count = len(report.results)
    head = f"tether: {HEADLINE[report.verdict]} — {count} experiment{'s' * (count != 1)}"
    return "\n\n".join([head, *(render(r) for r in report.results)])
