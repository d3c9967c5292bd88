"""`tether show`: the experiments recorded against the current commit."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tether.explore import ExperimentSummary, list_summaries


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "show",
        help="list recorded experiments with status, duration and metrics",
        description="List the experiments recorded against HEAD (or every baseline with -A), "
        "newest last, with status, duration, changed params and metrics.",
    )
    parser.add_argument("-A", "--all-baselines", action="store_true",
                        help="experiments of every baseline, not only HEAD's")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    summaries = list_summaries(args.cwd, all_baselines=args.all_baselines)
    if args.json:
        print(json.dumps([s.to_json() for s in summaries], indent=2, sort_keys=True))
        return 0
    if not summaries:
        print("no experiments yet: `tether run` records one")
        return 0
    print(render_table(summaries))
    return 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def render_table(summaries: list[ExperimentSummary]) -> str:
    param_keys = sorted({k for s in summaries for k in s.params})
    varying = [k for k in param_keys if len({json.dumps(s.params.get(k), default=str)
                                             for s in summaries}) > 1]
    metric_keys = sorted({k for s in summaries for k in s.metrics})
    header = ["name", "baseline", "created", "status", "duration",
              *varying, *metric_keys]
    rows = [header]
    for s in summaries:
        rows.append([
            s.name, s.baseline[:7], s.created, s.status, f"{s.duration:.1f}s",
            *(_fmt(s.params.get(k)) for k in varying),
            *(_fmt(s.metrics.get(k)) for k in metric_keys),
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
