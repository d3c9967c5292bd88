"""`tether diff`: two experiments (or one and the workspace) side by side.

Changes read as "A compared with B": the change is A - B, relative to B, and a
metric is better or worse in A than in B according to the metric rules of A's spec.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tether.errors import ExperimentError, SpecError
from tether.experiments.resolve import (
    Experiment,
    latest_experiment,
    one_experiment,
    resolve_experiment,
)
from tether.gitstore.git import Git
from tether.layout import STATE_DIR
from tether.parameters import load_params
from tether.record.metrics import flat_params, read_metrics_file
from tether.record.record import RunRecord
from tether.record.validate import Skipped
from tether.spec.loader import load_pipeline
from tether.status import SUCCESS
from tether.structs import asdict, field, struct

WORKSPACE = "workspace"


@struct(frozen=True)
class Side:
    """One side of a comparison: an experiment, or the workspace (commit None)."""

    label: str
    commit: str | None
    ref: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    status: str | None = None  # the experiment's; None for the workspace


@struct(frozen=True)
class ParamRow:
    key: str
    a: Any
    b: Any
    changed: bool


@struct(frozen=True)
class MetricRow:
    key: str
    a: Any
    b: Any
    change: float | None  # A - B, when both are numbers
    relative: float | None  # (A - B) / |B|, when B is a non-zero number
    mark: str  # better | worse | same | changed | only-a | only-b | ""


@struct
class Comparison:
    a: Side
    b: Side
    params: list[ParamRow] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # refs left out choosing A or B

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = asdict(self)
        del result["skipped"]
        return result


def experiment_side(exp: Experiment) -> Side:
    record = exp.run_record
    return Side(
        label=exp.ref.name, commit=exp.ref.commit, ref=exp.ref.ref,
        params=flat_params(record.params), metrics=dict(record.metrics),
        status=record.status or None,
    )


def workspace_side(root: Path, a_record: RunRecord) -> Side:
    """Params and metrics files as they are on disk now.

    The params files are those A recorded; the metrics files those declared in the
    current spec, or in A's spec when the project has none (a bare command).
    """
    params = load_params(root, {f for f in a_record.params if (root / f).exists()})
    try:
        stages = load_pipeline(root).to_json()["stages"]
    except SpecError:
        stages = a_record.spec.get("stages", {})
    metrics: dict[str, Any] = {}
    for stage in stages.values():
        for path in stage.get("metrics", []):
            metrics.update(read_metrics_file(root / path))
    return Side(label=WORKSPACE, commit=None, ref=None,
                params=flat_params(params.to_json()), metrics=metrics)


def resolve_pair(
    git: Git, a_text: str | None, b_text: str | None, skipped: list[Skipped] | None = None,
) -> tuple[Side, Side, RunRecord]:
    """Sides A and B with the defaults of `tether diff`, and A's record.

    A defaults to the latest experiment under HEAD. B defaults to the latest successful
    experiment recorded against the first parent of A's baseline, else the workspace.
    Refs with an invalid name or record are passed over (and added to `skipped`).
    """
    if a_text is None:
        head = git.head_commit()
        latest = latest_experiment(git, head, skipped=skipped)
        if latest is None:
            raise ExperimentError(
                f"no experiment is recorded against HEAD ({head[:10]})",
                hint="name the experiments to compare: tether diff A [B]",
            )
        a = latest
    else:
        a = one_experiment(git, resolve_experiment(git, a_text))
    if b_text is None:
        parent = git.resolve(f"{a.ref.baseline}^1")
        previous = (latest_experiment(git, parent, successful=True, skipped=skipped)
                    if parent else None)
        b = experiment_side(previous) if previous else workspace_side(git.root, a.run_record)
    elif b_text == WORKSPACE:
        b = workspace_side(git.root, a.run_record)
    else:
        b = experiment_side(one_experiment(git, resolve_experiment(git, b_text)))
    return experiment_side(a), b, a.run_record


def compare(a: Side, b: Side, rules: dict[str, Any]) -> Comparison:
    """Every param and metric of either side; metrics marked with A's rules.

    Metrics are judged better or worse only between runs that succeeded: a failed
    run's metrics (of its stages that succeeded) are shown, marked only as changed.
    """
    result = Comparison(a=a, b=b)
    if any(side.status not in (None, SUCCESS) for side in (a, b)):
        rules = {}
    for key in sorted(set(a.params) | set(b.params)):
        va, vb = a.params.get(key), b.params.get(key)
        result.params.append(ParamRow(key, va, vb, changed=va != vb or (key in a.params)
                                      != (key in b.params)))
    for key in sorted(set(a.metrics) | set(b.metrics)):
        result.metrics.append(_metric_row(key, a.metrics, b.metrics, rules.get(key)))
    return result


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metric_row(key: str, a: dict[str, Any], b: dict[str, Any], rule: Any) -> MetricRow:
    va, vb = a.get(key), b.get(key)
    if key not in b:
        return MetricRow(key, va, None, None, None, "only-a")
    if key not in a:
        return MetricRow(key, None, vb, None, None, "only-b")
    na, nb = _number(va), _number(vb)
    if na is None or nb is None:
        return MetricRow(key, va, vb, None, None, "same" if va == vb else "changed")
    change = na - nb
    relative = change / abs(nb) if nb != 0 else None
    return MetricRow(key, va, vb, change, relative, judge(change, nb, rule))


def judge(change: float, reference: float, rule: Any) -> str:
    """better / worse / same (within tolerance) by a rule, or same / changed without one."""
    if not isinstance(rule, dict) or rule.get("direction") not in ("min", "max"):
        return "same" if change == 0 else "changed"
    tolerance = rule.get("tolerance") or {}
    amount = float(tolerance.get("value") or 0.0)
    allowed = amount * abs(reference) if tolerance.get("kind") == "rel" else amount
    # Float noise is no change: 0.891 is within 1% of 0.9 although 0.891 - 0.9 is not.
    if abs(change) <= allowed + 1e-12 * max(1.0, abs(reference)):
        return "same"
    improved = change > 0 if rule["direction"] == "max" else change < 0
    return "better" if improved else "worse"


def diff_experiments(git: Git, a_text: str | None, b_text: str | None) -> Comparison:
    """The comparison `tether diff A B` prints (with the refs it had to skip)."""
    skipped: list[Skipped] = []
    a, b, record = resolve_pair(git, a_text, b_text, skipped)
    result = compare(a, b, record.spec.get("metrics", {}))
    result.skipped = skipped
    return result


def code_diff(git: Git, a: Side, b: Side) -> str:
    """`git diff` from B to A (the workspace when B is), without tether's own files."""
    assert a.commit is not None
    pathspec = ["--", ".", f":(exclude){STATE_DIR}"]
    if b.commit is None:
        argv = ["diff", "--no-color", "-R", a.commit, *pathspec]
    else:
        argv = ["diff", "--no-color", b.commit, a.commit, *pathspec]
    return git.run(*argv).stdout.decode(errors="replace")
