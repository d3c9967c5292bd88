"""`tether show`: recorded experiments grouped by baseline, as a table, JSON, CSV or markdown."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tether.cli.skipped import warn_skipped
from tether.experiments.explore import ShowResult, show_experiments

if TYPE_CHECKING:
    from tether.experiments.index import IndexedExperiment

FIXED_COLUMNS = ("name", "created", "status", "duration")
PROGRESS_THRESHOLD = 200  # records to index before a progress bar is worth drawing
CELL_CAP = 32  # longest cell when fitting a terminal
BASELINE_MARK = "[baseline]"  # after the name of a group's baseline row
_BOLD_GREEN = "\x1b[1;32m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"

HELP = """\
List the experiments recorded against HEAD (or --baseline REV, or every baseline
with -A), grouped under their baseline commit and the branches/tags pointing at
it. Columns: name, created, status, duration, the params that differ across the
shown experiments or from the baseline commit's params files (all with
--all-params) and the metrics.

The baseline row, first in each group and marked `[baseline]`, is the baseline
commit's own run: the newest successful experiment that ran that commit as
committed (no uncommitted change, no untracked file, no -S override), such as a
main build or a plain `tether run` right after committing. It is shown even when
--filter or --last leave it out, as the reference the others are read against;
--json and --csv list only the selected experiments (each with `as_committed`
in --json). The best value of each
metric with a declared direction (top-level `metrics:` rules of the spec) is
highlighted: bold green on a terminal, a trailing `*` otherwise. Only successful
experiments compete for it; a failed run shows the metrics of the stages that
succeeded in it, never those of an earlier run.

On a terminal the table is fitted to its width: long cells are shortened and
columns that do not fit are hidden (the count is reported). Piped, the table is
printed whole and without colors; --width N fits N columns anyway, --width 0
never fits. NO_COLOR disables colors.

Filters (--filter) compare columns with literals:
  metrics.acc > 0.9 and params.train.lr <= 0.01 and status == 'success'
  status in ('failed', 'timeout') or not duration < 60
  created >= '2026-01-31'
Columns: name status baseline created duration message params.<key> metrics.<key>
(params of another file: params.<file>:<key>). A comparison on a missing value is false.
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "show", help="list recorded experiments with status, duration, params and metrics",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_argument_group("which experiments")
    scope.add_argument("--baseline", default="HEAD", metavar="REV",
                       help="experiments recorded against this commit (default: HEAD)")
    scope.add_argument("-A", "--all-baselines", action="store_true",
                       help="experiments of every baseline")
    scope.add_argument("--filter", metavar="EXPR", help="keep experiments matching EXPR")
    scope.add_argument("--last", type=int, metavar="N", help="only the N most recent")
    scope.add_argument("--sort-by", metavar="COLUMN",
                       help="sort by a column, e.g. metrics.loss (default: created)")
    scope.add_argument("--desc", action="store_true", help="sort in descending order")
    look = parser.add_argument_group("output")
    formats = look.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print a JSON array")
    formats.add_argument("--csv", action="store_true", help="print CSV")
    formats.add_argument("--md", action="store_true", help="print markdown tables")
    look.add_argument("--all-params", action="store_true",
                      help="show every param, not only those that differ")
    look.add_argument("--width", type=int, metavar="N",
                      help="fit the table to N columns (0: never fit)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.cli.progress import ProgressBar

    with ProgressBar("indexing experiments", threshold=PROGRESS_THRESHOLD, erase=True) as bar:
        result = show_experiments(
            args.cwd, baseline=args.baseline, all_baselines=args.all_baselines,
            filter_expression=args.filter, sort_by=args.sort_by, descending=args.desc,
            last=args.last, all_params=args.all_params, progress=bar,
            labels=not (args.json or args.csv),
        )
    for note in result.notes:
        print(f"tether: warning: {note}", file=sys.stderr)
    warn_skipped(result.skipped)
    if args.json:
        sys.stdout.write("[" + ",\n".join(e.json_text for e in result.experiments) + "]\n")
        return 0
    if args.csv:
        sys.stdout.write(render_csv(result))
        return 0
    if not result.experiments:
        print(_nothing_shown(result, args))
        return 0
    if args.md:
        sys.stdout.write(render_markdown(result))
        return 0
    tty = sys.stdout.isatty()
    width = args.width if args.width is not None else (
        shutil.get_terminal_size().columns if tty else 0)
    color = tty and not os.environ.get("NO_COLOR")
    sys.stdout.write(render_table(result, width=width or None, color=color))
    return 0


def _nothing_shown(result: ShowResult, args: argparse.Namespace) -> str:
    if result.total:
        return f"no experiment matches (of {result.total} in scope)"
    where = "any baseline" if args.all_baselines else args.baseline
    text = f"no experiments recorded against {where} yet: `tether run` records one"
    if result.elsewhere and result.latest_baseline:
        latest = result.latest_baseline[:10]
        count = result.elsewhere
        text += (f"\n{count} experiment{'s are' if count != 1 else ' is'} recorded against "
                 f"other commits (an experiment "
                 f"belongs to the commit it started from), the latest against {latest}: "
                 f"`tether show -A` lists them all, `tether show --baseline {latest}` those")
    return text


def _created(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _header(result: ShowResult) -> list[str]:
    return [*FIXED_COLUMNS, *result.param_keys, *result.metric_keys]


def _cells(result: ShowResult, exp: IndexedExperiment, reference: bool = False) -> list[str]:
    return [
        f"{exp.name} {BASELINE_MARK}" if reference else exp.name,
        _created(exp.created_at), exp.status, _duration(exp.duration),
        *("-" if k not in exp.params else _value(exp.params[k]) for k in result.param_keys),
        *("-" if k not in exp.metrics else _value(exp.metrics[k]) for k in result.metric_keys),
    ]


def _best_flags(result: ShowResult, exp: IndexedExperiment) -> list[bool]:
    fixed = [False] * (len(FIXED_COLUMNS) + len(result.param_keys))
    return fixed + [k in result.best and exp.metrics.get(k) == result.best[k]
                    and not isinstance(exp.metrics.get(k), bool) for k in result.metric_keys]


def _group_title(sha: str, labels: list[str]) -> str:
    return f"baseline {sha[:7]}" + (f" ({', '.join(labels)})" if labels else "")


def render_csv(result: ShowResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["baseline", *FIXED_COLUMNS, *(f"params.{k}" for k in result.param_keys),
                     *(f"metrics.{k}" for k in result.metric_keys)])
    for exp in result.experiments:
        writer.writerow([
            exp.baseline, exp.name, datetime.fromtimestamp(exp.created_at).isoformat(),
            exp.status, f"{exp.duration:.3f}",
            *("" if k not in exp.params else _value(exp.params[k]) for k in result.param_keys),
            *("" if k not in exp.metrics else json.dumps(exp.metrics[k])
              for k in result.metric_keys),
        ])
    return out.getvalue()


def render_markdown(result: ShowResult) -> str:
    header = _header(result)
    lines = []
    for group in result.groups:
        lines += [f"### {_group_title(group.baseline, group.labels)}", "",
                  "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        for exp in group.rows:
            cells = [c.replace("|", "\\|") + ("*" if best else "")
                     for c, best in zip(_cells(result, exp, exp is group.reference),
                                        _best_flags(result, exp), strict=True)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result.best:
        lines.append("`*` best value of a metric, by its declared direction")
    return "\n".join(lines) + "\n"


def _shorten(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: max(cap - 1, 0)] + "…"


def render_table(result: ShowResult, *, width: int | None = None, color: bool = False) -> str:
    """Aligned text; with `width`, cells are shortened and columns that do not fit hidden."""
    header = _header(result)
    shown_rows = [(exp, exp is group.reference) for group in result.groups for exp in group.rows]
    rows = {exp.ref: _cells(result, exp, reference) for exp, reference in shown_rows}
    flags = {exp.ref: _best_flags(result, exp) for exp, _ in shown_rows}
    marker = "" if color else "*"
    for ref, cells in rows.items():
        rows[ref] = [c + marker if best else c for c, best in zip(cells, flags[ref], strict=True)]
    if width:
        header = [_shorten(h, CELL_CAP) for h in header]
        rows = {ref: [_shorten(c, CELL_CAP) for c in cells] for ref, cells in rows.items()}
    widths = [max([len(header[i]), *(len(cells[i]) for cells in rows.values())])
              for i in range(len(header))]
    shown = list(range(len(header)))
    hidden = 0
    if width:
        # Hide params first (rightmost first), then metrics, keeping the fixed columns.
        droppable = [i for i in shown if i >= len(FIXED_COLUMNS)]
        param_end = len(FIXED_COLUMNS) + len(result.param_keys)
        order = [i for i in reversed(droppable) if i < param_end] + \
                [i for i in reversed(droppable) if i >= param_end]
        while sum(widths[i] + 2 for i in shown) - 2 > width and order:
            shown.remove(order.pop(0))
            hidden += 1
        overflow = sum(widths[i] + 2 for i in shown) - 2 - width
        if overflow > 0:
            widths[0] = max(widths[0] - overflow, 4)

    def line(cells: list[str], best: list[bool] | None = None) -> str:
        parts = []
        for i in shown:
            text = _shorten(cells[i], widths[i]).ljust(widths[i])
            if color and best and best[i]:
                text = f"{_BOLD_GREEN}{text}{_RESET}"
            parts.append(text)
        return "  ".join(parts).rstrip()

    out = []
    for group in result.groups:
        title = _group_title(group.baseline, group.labels)
        out.append(f"{_DIM}{title}{_RESET}" if color else title)
        out.append(line(header))
        out += [line(rows[exp.ref], flags[exp.ref]) for exp in group.rows]
        out.append("")
    if hidden:
        out.append(f"{hidden} column{'s' if hidden != 1 else ''} hidden to fit {width} "
                   "characters: use --width 0, --csv or --json to see them")
    elif result.best and not color:
        out.append("* best value of a metric, by its declared direction")
    return "\n".join(out).rstrip("\n") + "\n"
