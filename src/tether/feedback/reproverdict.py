"""Did a reproduction reproduce? Metric by metric, within tolerances, with the
environment differences that may explain why not.

A metric's tolerance is, first match wins: `--tolerance METRIC=VALUE[%]` (kept in the
reproduction's record), the tolerance the original's spec declares for it (the one the
gate uses, if not zero), else the default: exact equality for integers, strings and
booleans, a relative 1e-9 for floats (float noise, not a drift). A number is judged
with `experiments.compare.judge`, the gate's own arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tether.errors import UsageError
from tether.experiments.compare import judge
from tether.record.record import RunRecord
from tether.status import SUCCESS
from tether.structs import asdict, field, struct

DEFAULT_FLOAT_TOLERANCE = {"kind": "rel", "value": 1e-9}
EXACT = {"kind": "abs", "value": 0.0}
REPRODUCED, NOT_REPRODUCED, RUN_FAILED = "reproduced", "not-reproduced", "failed"
# Metric verdicts.
SAME, DIFFERENT, MISSING, NEW = "same", "different", "missing", "new"


def parse_tolerance(metric: str, text: str) -> dict[str, Any]:
    """`0.01` -> absolute 0.01; `1%` -> relative 0.01 (a UsageError for anything else)."""
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or not metric:
        raise UsageError(
            f"--tolerance {metric}={text}: expected METRIC=VALUE or METRIC=VALUE% with a "
            "number ≥ 0", hint="e.g. --tolerance acc=0.001 --tolerance loss=2%")
    return {"kind": "rel", "value": value / 100} if relative else {"kind": "abs", "value": value}


def parse_tolerances(given: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {metric: parse_tolerance(metric, text) for metric, text in given.items()}


def split_tolerance_options(options: list[str]) -> dict[str, str]:
    """`METRIC=VALUE[%]` command-line options as a mapping."""
    found = {}
    for option in options:
        metric, sep, value = option.partition("=")
        if not sep or not metric.strip():
            raise UsageError(f"--tolerance {option!r}: expected METRIC=VALUE[%]",
                             hint="e.g. --tolerance acc=0.001 --tolerance loss=2%")
        found[metric.strip()] = value
    return found


@struct(frozen=True)
class MetricCheck:
    key: str
    original: Any
    reproduced: Any
    tolerance: dict[str, Any]
    source: str  # option | spec | default
    verdict: str  # same | different | missing | new


@struct
class ReproVerdict:
    """The reproduction of one experiment, judged."""

    original: dict[str, Any]  # name, ref, id, status
    reproduction: dict[str, Any]  # name, ref, id, status
    verdict: str  # reproduced | not-reproduced | failed
    metrics: list[MetricCheck] = field(default_factory=list)
    environment: list[dict[str, Any]] = field(default_factory=list)  # what, original, now
    # Dependencies whose content differs from the original's (what, original, now: hashes).
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return self.verdict == REPRODUCED

    @property
    def differing(self) -> list[MetricCheck]:
        return [m for m in self.metrics if m.verdict != SAME]

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = asdict(self)
        return result


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _tolerance(key: str, value: Any, given: Mapping[str, Any],
               rules: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if key in given:
        return dict(given[key]), "option"
    rule = rules.get(key)
    declared = rule.get("tolerance") if isinstance(rule, dict) else None
    if isinstance(declared, dict) and _is_number(declared.get("value")) and declared["value"] > 0:
        return {"kind": declared.get("kind") or "abs", "value": declared["value"]}, "spec"
    if isinstance(value, float):
        return dict(DEFAULT_FLOAT_TOLERANCE), "default"
    return dict(EXACT), "default"


def check_metric(key: str, original: dict[str, Any], new: dict[str, Any],
                 given: Mapping[str, Any], rules: Mapping[str, Any]) -> MetricCheck:
    """One metric of the original against the reproduction."""
    a, b = original.get(key), new.get(key)
    tolerance, source = _tolerance(key, a, given, rules)
    if key not in new:
        return MetricCheck(key, a, None, tolerance, source, MISSING)
    if key not in original:
        return MetricCheck(key, None, b, tolerance, source, NEW)
    if a is not None and b is not None and _is_number(a) and _is_number(b):
        mark = judge(float(b) - float(a), float(a), {"direction": "min", "tolerance": tolerance})
        same = mark == "same"
    else:
        same = a == b and type(a) is type(b)
    return MetricCheck(key, a, b, tolerance, source, SAME if same else DIFFERENT)


def _side(record: RunRecord, ref: str | None) -> dict[str, Any]:
    return {"name": record.name, "ref": ref, "id": record.id, "status": record.status}


def judge_reproduction(original: RunRecord, reproduction: RunRecord,
                       original_ref: str | None = None,
                       reproduction_ref: str | None = None) -> ReproVerdict:
    """The verdict on `reproduction` (whose record says which tolerances it was given)."""
    given = (reproduction.reproduces or {}).get("tolerances") or {}
    rules = original.spec.get("metrics") or {}
    checks = [check_metric(key, original.metrics, reproduction.metrics, given, rules)
              for key in sorted(set(original.metrics) | set(reproduction.metrics))]
    if reproduction.status != SUCCESS and original.status == SUCCESS:
        verdict = RUN_FAILED
    elif any(c.verdict != SAME for c in checks) or reproduction.status != original.status:
        verdict = NOT_REPRODUCED
    else:
        verdict = REPRODUCED
    return ReproVerdict(
        original=_side(original, original_ref), reproduction=_side(reproduction,
                                                                   reproduction_ref),
        verdict=verdict, metrics=checks,
        environment=environment_differences(original.environment, reproduction.environment),
        inputs=input_differences(original, reproduction),
    )


def input_differences(original: RunRecord, reproduction: RunRecord) -> list[dict[str, Any]]:
    """Dependencies of a stage whose recorded hash differs between the two runs (the
    code is the same by construction: a difference is data from outside the snapshot)."""
    now = {stage.name: stage.deps for stage in reproduction.stages}
    found = []
    for stage in original.stages:
        for path, digest in sorted(stage.deps.items()):
            later = now.get(stage.name, {}).get(path)
            if digest and later and digest != later:
                found.append({"what": f"{path} (stage {stage.name})",
                              "original": str(digest), "now": str(later)})
    return found


def environment_differences(original: Mapping[str, Any],
                            now: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What differs between two recorded environments: Python, platform, GPUs, packages."""
    found: list[dict[str, Any]] = []

    def differ(what: str, a: Any, b: Any) -> None:
        if a != b:
            found.append({"what": what, "original": a, "now": b})

    differ("python", _get(original, "python", "version"), _get(now, "python", "version"))
    differ("python implementation", _get(original, "python", "implementation"),
           _get(now, "python", "implementation"))
    differ("platform", _get(original, "os", "platform"), _get(now, "os", "platform"))
    differ("gpus", _gpu_names(original), _gpu_names(now))
    a_packages, b_packages = original.get("packages"), now.get("packages")
    a_packages = a_packages if isinstance(a_packages, dict) else {}
    b_packages = b_packages if isinstance(b_packages, dict) else {}
    for name in sorted(set(a_packages) | set(b_packages)):
        differ(f"package {name}", a_packages.get(name), b_packages.get(name))
    return found


def _get(env: Mapping[str, Any], section: str, key: str) -> Any:
    part = env.get(section)
    return part.get(key) if isinstance(part, dict) else None


def _gpu_names(env: Mapping[str, Any]) -> list[str]:
    gpus = env.get("gpus")
    if not isinstance(gpus, list):
        return []
    return [str(g.get("name")) for g in gpus if isinstance(g, dict)]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return "-" if value is None else str(value)


def tolerance_text(tolerance: Mapping[str, Any]) -> str:
    value = float(tolerance.get("value") or 0)
    if tolerance.get("kind") == "rel":
        return f"±{value * 100:g}%" if value >= 1e-4 else f"rel {value:g}"
    return "exact" if value == 0 else f"±{value:g}"


def describe(verdict: ReproVerdict, limit: int = 10) -> str:
    """The verdict in a few lines, for a notification: what differs, and where."""
    lines = [f"Reproduction of {verdict.original.get('name')} "
             f"({verdict.original.get('ref')}): {verdict.verdict}"]
    if verdict.reproduction.get("status") != verdict.original.get("status"):
        lines.append(f"Status: {verdict.original.get('status')} -> "
                     f"{verdict.reproduction.get('status')}")
    for check in verdict.differing[:limit]:
        lines.append(f"{check.key}: {_shown(check.original)} -> {_shown(check.reproduced)} "
                     f"({check.verdict}; tolerance {tolerance_text(check.tolerance)}, "
                     f"{check.source})")
    if verdict.inputs:
        lines.append("Inputs that changed: " + ", ".join(d["what"] for d in verdict.inputs))
    if verdict.environment:
        shown = ", ".join(f"{d['what']} {_shown(d['original'])} -> {_shown(d['now'])}"
                          for d in verdict.environment[:limit])
        lines.append(f"Environment differences: {shown}")
    return "\n".join(lines)
