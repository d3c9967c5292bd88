"""`tether diff [A [B]]`: params and metrics of two experiments side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tether.cli.skipped import warn_skipped
from tether.experiments.compare import WORKSPACE, Comparison, code_diff, diff_experiments
from tether.gitstore.git import Git, find_root
from tether.status import SUCCESS

MARKS = {"better": "▲ better", "worse": "▼ worse", "same": "= same", "changed": "≠ changed",
         "only-a": "only in A", "only-b": "only in B", "": ""}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "diff",
        help="compare the params and metrics of two experiments",
        description="Show params and metrics of experiment A next to B, with the change "
        "A - B (absolute and relative to B) and whether each metric is better, worse or the "
        "same within tolerance, by the metric rules of A's spec. A defaults to the latest "
        "experiment under HEAD; B to the latest successful experiment recorded against the "
        "parent of A's baseline, else the workspace (write `workspace` to choose it).",
    )
    parser.add_argument("a", nargs="?", metavar="A", help="experiment: name, commit prefix or ref")
    parser.add_argument("b", nargs="?", metavar="B",
                        help=f"experiment to compare with, or `{WORKSPACE}`")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--md", action="store_true", help="print Markdown tables")
    form.add_argument("--code", action="store_true",
                      help="print `git diff` from B's tree to A's, without .tether/")
    parser.add_argument("--all", action="store_true", help="also list params that did not change")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    git = Git(find_root(args.cwd))
    comparison = diff_experiments(git, args.a, args.b)
    warn_skipped(comparison.skipped)
    if args.code:
        print(code_diff(git, comparison.a, comparison.b), end="")
    elif args.json:
        print(json.dumps(comparison.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print(render(comparison, markdown=args.md, all_params=args.all))
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _signed(value: float | None, percent: bool = False) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.2f}%" if percent else f"{value:+.6g}"


def _status(status: str | None) -> str:
    return f", {status}" if status not in (None, SUCCESS) else ""


def render(comparison: Comparison, *, markdown: bool = False, all_params: bool = False) -> str:
    a, b = comparison.a, comparison.b
    title = f"A: {a.label} ({a.commit[:10] if a.commit else ''}{_status(a.status)})  " \
        f"B: {b.label}" + (f" ({b.commit[:10]}{_status(b.status)})" if b.commit else "")
    params = [r for r in comparison.params if r.changed or all_params]
    param_rows = [[r.key, _fmt(r.a), _fmt(r.b)] for r in params]
    metric_rows = [
        [r.key, _fmt(r.a), _fmt(r.b), _signed(r.change), _signed(r.relative, True), MARKS[r.mark]]
        for r in comparison.metrics
    ]
    parts = [f"**{title}**" if markdown else title]
    if param_rows:
        parts.append(_table(["param", "A", "B"], param_rows, markdown))
    else:
        parts.append("params: no change")
    if metric_rows:
        parts.append(_table(["metric", "A", "B", "change", "relative", ""], metric_rows, markdown))
    else:
        parts.append("metrics: none recorded")
    return "\n\n".join(parts)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    every = [header, *rows]
    widths = [max(len(r[i]) for r in every) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in every
    )
