"""`tether report`: a Markdown report a reviewer can act on in ten seconds.

Overall verdict first, then per experiment its metrics against the last main build
(regressions first), the params that differ, status and duration, failed stages with
the tail of their log, and Unicode sparklines of step metrics. `fit` trims a report to a
forge's size limit without breaking its Markdown, saying where the full one is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tether.atomic import write_bytes
from tether.experiments.explore import read_checked_records
from tether.feedback.gate import (
    FAILED,
    NO_BASELINE,
    PASSED,
    REGRESSED,
    WARNED,
    Gate,
    GateResult,
    gate_experiments,
    overall,
)
from tether.layout import state_dir
from tether.structs import struct

GITHUB_LIMIT = 65_536  # characters of one issue or pull-request comment
GITLAB_LIMIT = 1_000_000  # characters of one note
REPORTS_DIR = "reports"
LOG_TAIL_LINES = 15
SPARK_POINTS = 32
SPARKS = "▁▂▃▄▅▆▇█"
MAX_SPARKLINES = 12  # per experiment

HEADLINE = {PASSED: "✅ passed", WARNED: "⚠️ passed with warnings", REGRESSED: "❌ regressed",
            FAILED: "❌ run failed", NO_BASELINE: "❔ no main build to compare with"}
VERDICT_MARK = {"better": "▲ better", "same": "= same", "warn": "⚠️ warn",
                "regressed": "❌ **regressed**", "missing": "❔ missing", "new": "🆕 new",
                "changed": "≠ changed"}


@struct
class Report:
    """Gate results of several experiments, with their full records (steps, stages)."""

    results: list[GateResult]
    records: list[dict[str, Any]]
    verdict: str = PASSED
    key: str = "default"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "key": self.key,
                "experiments": [r.to_json() for r in self.results]}


def build_report(gate: Gate, names: list[str], *, key: str = "default") -> Report:
    """Gate `names` (default: every experiment recorded against HEAD) and read their records."""
    results = gate_experiments(gate, names, every=not names)
    records = [record.to_json() if record is not None else {} for record, _ in
               read_checked_records(gate.git, [r.experiment.commit for r in results])]
    return Report(results, records, overall(results), key)


# -- rendering ----------------------------------------------------------------------


def render(report: Report) -> str:
    """The whole report as Markdown (see `fit` for a forge's size limit)."""
    return "\n".join(_lines(report)) + "\n"


def _lines(report: Report) -> Iterable[str]:
    results = report.results
    mains = {r.main.experiment.ref: r.main for r in results if r.main}
    where = ""
    if len(mains) == 1:
        main = next(iter(mains.values()))
        where = (f" against the main build `{main.experiment.name}` "
                 f"({main.found.commit[:10]}, {_position(main.found.rev, main.found.distance)})")
    elif results and results[0].main is None:
        search = results[0].search
        where = f": no successful experiment in {search.walked} commits of {search.rev}"
    count = f"{len(results)} experiment{'s' if len(results) != 1 else ''}"
    yield f"## tether: {HEADLINE[report.verdict]} — {count}{where}"
    yield ""
    yield "| experiment | status | duration | verdict | regressed | warnings |"
    yield "|---|---|---:|---|---|---|"
    for r in results:
        exp = r.experiment
        regressed = ", ".join(f"`{m.key}`" for m in r.failing[:5])
        if len(r.failing) > 5:
            regressed += f" and {len(r.failing) - 5} more"
        warned = [m for m in r.metrics if m.verdict == "warn"]
        warnings = ", ".join(f"`{m.key}`" for m in warned[:5])
        if len(warned) > 5:
            warnings += f" and {len(warned) - 5} more"
        yield (f"| {_cell(exp.name)} | {exp.status} | {_duration(exp.duration)} | "
               f"{HEADLINE[r.verdict]} | {regressed} | {warnings} |")
    for result, record in zip(results, report.records, strict=True):
        yield ""
        yield from _experiment(result, record)


def _experiment(result: GateResult, record: dict[str, Any]) -> Iterable[str]:
    exp, main = result.experiment, result.main
    yield f"### {HEADLINE[result.verdict].split(' ')[0]} `{exp.name}`"
    yield ""
    line = (f"{exp.status}, {_duration(exp.duration)}, recorded against "
            f"`{exp.baseline[:10]}` as `{exp.commit[:10]}`")
    if main is not None:
        line += f"; main build `{main.experiment.name}` (`{main.experiment.commit[:10]}`)"
    yield line
    yield ""
    if result.metrics:
        yield "| metric | main | this | change | relative | verdict |"
        yield "|---|---:|---:|---:|---:|---|"
        for m in result.metrics:
            mark = _mark(m.verdict, m.gated)
            yield (f"| {_cell(m.key)} | {_value(m.baseline)} | {_value(m.value)} | "
                   f"{_signed(m.change)} | {_signed(m.relative, percent=True)} | {mark} |")
        yield ""
    if result.params:
        count = len(result.params)
        yield (f"<details><summary>{count} param{'s differ' if count != 1 else ' differs'} "
               "from the main build</summary>")
        yield ""
        yield "| param | main | this |"
        yield "|---|---|---|"
        for p in result.params:
            yield f"| {_cell(p.key)} | {_value(p.b)} | {_value(p.a)} |"
        yield ""
        yield "</details>"
        yield ""
    yield from _failed_stages(record)
    yield from _sparklines(record)


def _failed_stages(record: dict[str, Any]) -> Iterable[str]:
    for stage in record.get("stages") or []:
        if not isinstance(stage, dict) or stage.get("status") in ("success", "skipped",
                                                                    "not_run", None):
            continue
        code = stage.get("exit_code")
        yield (f"**Stage `{stage.get('name')}` {stage.get('status')}**"
               + (f" (exit {code})" if code is not None else "")
               + (f": {_cell(str(stage['error']))}" if stage.get("error") else ""))
        tail = log_tail(stage.get("log"))
        if tail:
            fence = "`" * max(3, _longest_backticks(tail) + 1)
            yield ""
            yield f"{fence}text"
            yield from tail.splitlines()
            yield fence
        yield ""


def log_tail(log: Any, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a stage log as the record keeps it (whole, or head and tail)."""
    if not isinstance(log, dict):
        return ""
    text = log.get("text") if log.get("text") is not None else log.get("tail")
    if not isinstance(text, str):
        return ""
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(line if len(line) <= 300 else line[:300] + "…" for line in kept)


def _longest_backticks(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def _sparklines(record: dict[str, Any]) -> Iterable[str]:
    series: dict[str, list[float]] = {}
    steps = record.get("steps")
    if not isinstance(steps, dict):
        return
    for name, points in steps.items():
        for point in points if isinstance(points, list) else ():
            if not isinstance(point, dict):
                continue
            for key, value in point.items():
                if key in ("step", "ts", "timestamp", "time") or isinstance(value, bool) or \
                        not isinstance(value, int | float) or not math.isfinite(value):
                    continue
                label = key if len(steps) == 1 else f"{name}.{key}"
                series.setdefault(label, []).append(float(value))
    if not series:
        return
    yield "| step metric | trend | first | last | min | max | steps |"
    yield "|---|---|---:|---:|---:|---:|---:|"
    for label, values in sorted(series.items())[:MAX_SPARKLINES]:
        yield (f"| {_cell(label)} | {sparkline(values)} | {_value(values[0])} | "
               f"{_value(values[-1])} | {_value(min(values))} | {_value(max(values))} | "
               f"{len(values)} |")
    if len(series) > MAX_SPARKLINES:
        yield f"| … {len(series) - MAX_SPARKLINES} more | | | | | | |"
    yield ""


def sparkline(values: list[float], width: int = SPARK_POINTS) -> str:
    """`values` as a line of block characters, at most `width` long (evenly sampled)."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[len(SPARKS) // 2] * len(values)
    scale = (len(SPARKS) - 1) / (high - low)
    return "".join(SPARKS[round((v - low) * scale)] for v in values)


def _mark(verdict: str, gated: bool) -> str:
    if gated:
        return VERDICT_MARK.get(verdict, verdict)
    # Reported only: no alarm for what cannot fail the gate.
    return {"regressed": "▼ worse"}.get(verdict, VERDICT_MARK.get(verdict, verdict)) + \
        " (not gated)"


def _position(rev: str, distance: int) -> str:
    return f"tip of {rev}" if distance == 0 else f"{rev}~{distance}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return _cell(str(value))


def _signed(value: float | None, *, percent: bool = False) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.2f}%" if percent else f"{value:+.6g}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


# -- the size limit -----------------------------------------------------------------


def fit(text: str, limit: int, full_path: str, *, reserve: int = 0) -> str:
    """`text` if it fits in `limit - reserve` characters, else cut at a line with every open
    code fence and `<details>` closed, and a note saying where the full report is."""
    if len(text) <= limit - reserve:
        return text
    note = (f"\n\n> ✂️ This report was trimmed to fit the forge's limit of {limit:,} "
            f"characters (the whole report has {len(text):,}). The full report is in "
            f"`{full_path}`, uploaded as the job's artifact.\n")
    budget = limit - reserve - len(note) - 64  # room for the closing fence and tags
    kept: list[str] = []
    size = 0
    fence: str | None = None
    details = 0
    for line in text.splitlines():
        closing = len(fence or "") + 1 + details * len("\n</details>")
        if size + len(line) + 1 + closing > budget:
            break
        kept.append(line)
        size += len(line) + 1
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
        elif fence is not None and stripped == fence:
            fence = None
        details += stripped.startswith("<details>") - (stripped == "</details>")
    if fence is not None:
        kept.append(fence)
    kept += ["", "</details>"] * details
    return "\n".join(kept) + note


def write_full(root: Path, key: str, text: str) -> Path:
    """Keep the whole report at `.tether/reports/<key>.md` (for a CI artifact)."""
    path = state_dir(root) / REPORTS_DIR / f"{_safe(key)}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, text.encode())
    return path


def _safe(key: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in key).strip(".")
    return cleaned or "default"
