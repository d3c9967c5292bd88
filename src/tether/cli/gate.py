"""`tether gate [EXP] [--against REV]`: pass or fail a change against the last main build."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tether.cli.diff import _fmt, _signed, _table
from tether.errors import GateRegressed, NoBaselineError
from tether.feedback.gate import (
    FAILED,
    NO_BASELINE,
    REGRESSED,
    WARNED,
    GateResult,
    gate_experiments,
    open_gate,
)

MARKS = {"better": "▲ better", "same": "= same", "warn": "! warn", "regressed": "▼ REGRESSED",
         "missing": "? missing", "new": "+ new", "changed": "≠ changed"}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "gate",
        help="pass or fail an experiment against the last main build",
        description="Compare an experiment with the last main build: the newest successful "
        "experiment on the main branch's first-parent history (at most feedback.depth "
        "commits, default 200) that is no reproduction, preferring one with the same name. "
        "Each metric is judged by the `metrics:` rules of the spec (direction, tolerance, "
        "warn, gate, allow_missing). "
        "Experiment refs only the git remote has are fetched on demand. Exit 0: passed "
        "(warnings included); 16: a gated metric regressed or went missing, or the run "
        "failed; 17: no main build found.",
    )
    parser.add_argument("exp", nargs="?", metavar="EXP",
                        help="experiment (default: the latest recorded against HEAD)")
    parser.add_argument("--against", metavar="REV",
                        help="the main branch (default: feedback.main in .tether/config.yaml, "
                        "else the remote's default branch, else main)")
    parser.add_argument("--allow-no-baseline", action="store_true",
                        help="pass, with a warning, when no main build is found")
    parser.add_argument("--no-fetch", dest="fetch", action="store_false",
                        help="use only the refs and history already here")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print every verdict as JSON")
    form.add_argument("--md", action="store_true", help="print Markdown (for CI logs)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    gate = open_gate(root, against=args.against, fetch=args.fetch)
    result = gate_experiments(gate, [args.exp] if args.exp else [])[0]
    if result.verdict == REGRESSED:
        from tether.feedback.listeners import notify_regressed

        names = ", ".join(f"{m.key} ({m.verdict})" for m in result.failing)
        notify_regressed(root, result.experiment.ref, f"Regressed metrics: {names}")
    for note in result.search.notes:
        print(f"tether: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print(render(result, markdown=args.md))
    return finish(result, allow_no_baseline=args.allow_no_baseline)


def finish(result: GateResult, *, allow_no_baseline: bool) -> int:
    """0, or raise the error whose exit code tells how the gate failed."""
    exp = result.experiment
    if result.verdict == NO_BASELINE:
        message = (f"no main build found: no successful experiment on the first "
                   f"{result.search.walked} commits of {result.search.rev}'s history")
        hint = ("record one on the main branch (tether run there, then tether push), or "
                "raise feedback.depth")
        if allow_no_baseline:
            print(f"tether: warning: {message}; passing (--allow-no-baseline)", file=sys.stderr)
            return 0
        raise NoBaselineError(message, hint=hint)
    if result.verdict == FAILED:
        raise GateRegressed(f"experiment {exp.name!r} did not succeed ({exp.status})",
                            hint=f"tether logs {exp.name} shows what went wrong")
    if result.verdict == REGRESSED:
        names = ", ".join(f"{m.key} ({m.verdict})" for m in result.failing)
        raise GateRegressed(f"{exp.name!r} regressed against the main build: {names}")
    if result.verdict == WARNED:
        names = ", ".join(m.key for m in result.metrics if m.verdict == "warn")
        print(f"tether: warning: within the warning band: {names}", file=sys.stderr)
    return 0


def render(result: GateResult, *, markdown: bool = False) -> str:
    exp, main = result.experiment, result.main
    head = f"{exp.name} ({exp.commit[:10]}, {exp.status}): {result.verdict.upper()}"
    if main is None:
        where = f"no main build in {result.search.walked} commits of {result.search.rev}"
    else:
        build = main.experiment
        where = (f"against {build.name} ({build.commit[:10]}) on {main.found.rev}~"
                 f"{main.found.distance} ({main.found.commit[:10]})")
    parts = [f"**{head}** {where}" if markdown else f"{head}\n{where}"]
    rows = [[m.key, _fmt(m.baseline), _fmt(m.value), _signed(m.change),
             _signed(m.relative, True), _mark(m.verdict, m.gated)] for m in result.metrics]
    if rows:
        parts.append(_table(["metric", "main", "this", "change", "relative", "verdict"],
                            rows, markdown))
    elif main is not None:
        parts.append("metrics: none recorded")
    return "\n\n".join(parts)


def _mark(verdict: str, gated: bool) -> str:
    if gated:
        return MARKS.get(verdict, verdict)
    return ("▼ worse" if verdict == "regressed" else MARKS.get(verdict, verdict)) + \
        " (not gated)"
