"""`tether gate`: one experiment against the last main build, a verdict per metric.

The comparison itself is `tether diff`'s (`experiments.compare`); this module turns its
marks into gate verdicts with the metric rules of the experiment's spec:

- better / same (within `tolerance`) / warn (past the tolerance, within `warn`) /
  regressed (worse than that, or a number that became NaN) / missing (in the main
  build, not here) / new (here only) / changed (no rule, or not a number).
- A metric fails the gate when it has a rule with `gate` on (the default) and is
  regressed, or missing without `allow_missing`. Metrics without a rule are reported only.
- A run that did not succeed fails the gate whatever its metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether.errors import ExperimentError
from tether.experiments.compare import MetricRow, ParamRow, Side, compare, judge
from tether.experiments.index import Index, IndexedExperiment, refresh
from tether.experiments.resolve import one_experiment, resolve_experiment
from tether.feedback.history import (
    MainBuild,
    Search,
    Settings,
    default_remote,
    find_main_commit,
    load_settings,
    main_branch,
)
from tether.gitstore.git import Git
from tether.layout import EXPS_REFS
from tether.structs import field, struct

# Overall verdicts; FAILING ones make `tether gate` exit non-zero.
PASSED, WARNED, REGRESSED, FAILED, NO_BASELINE = (
    "passed", "warned", "regressed", "failed", "no-baseline")
FAILING = frozenset({REGRESSED, FAILED, NO_BASELINE})
# Per-metric verdicts, most important first (reports list metrics in this order).
METRIC_ORDER = ("regressed", "missing", "warn", "better", "new", "changed", "same")
_MARKS = {"better": "better", "same": "same", "only-a": "new", "only-b": "missing"}


@struct(frozen=True)
class MetricVerdict:
    key: str
    value: Any  # this experiment's
    baseline: Any  # the main build's
    change: float | None  # value - baseline, when both are numbers
    relative: float | None  # change / |baseline|, when baseline is a non-zero number
    verdict: str  # better | same | warn | regressed | missing | new | changed
    gated: bool  # has a rule with `gate` on: a regression here fails the gate
    failing: bool  # this verdict fails the gate


@struct
class GateResult:
    """One experiment judged against the last main build (None: none was found)."""

    experiment: IndexedExperiment
    main: MainBuild | None
    search: Search
    metrics: list[MetricVerdict] = field(default_factory=list)
    params: list[ParamRow] = field(default_factory=list)  # those that differ
    verdict: str = PASSED

    @property
    def failing(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.failing]

    def to_json(self) -> dict[str, Any]:
        exp = self.experiment
        main = self.main
        return {
            "verdict": self.verdict,
            "experiment": _exp_json(exp),
            "main_build": None if main is None else {
                **_exp_json(main.experiment), "rev": main.found.rev, "tip": main.found.tip,
                "distance": main.found.distance, "fetched_baselines": main.found.fetched},
            "searched": {"rev": self.search.rev, "tip": self.search.tip,
                         "walked": self.search.walked, "depth": self.search.depth,
                         "notes": self.search.notes},
            "metrics": [{"metric": m.key, "value": m.value, "baseline": m.baseline,
                         "change": m.change, "relative": m.relative, "verdict": m.verdict,
                         "gated": m.gated, "failing": m.failing} for m in self.metrics],
            "params": [{"param": p.key, "value": p.a, "baseline": p.b} for p in self.params],
        }


def _exp_json(exp: IndexedExperiment) -> dict[str, Any]:
    return {"name": exp.name, "ref": exp.ref, "commit": exp.commit, "baseline": exp.baseline,
            "status": exp.status, "duration": exp.duration}


def _side(exp: IndexedExperiment, *, judged: bool = True) -> Side:
    # Status None: compare() judges metrics only between successful sides, but the gate
    # judges a failed run's metrics too (the run's own status fails it anyway).
    return Side(label=exp.name, commit=exp.commit, ref=exp.ref, params=exp.params,
                metrics=exp.metrics, status=None if judged else exp.status)


def metric_verdict(row: MetricRow, rule: Any) -> MetricVerdict:
    """The gate's verdict on one row of `compare` under the metric's rule (or None)."""
    ruled = isinstance(rule, dict) and rule.get("direction") in ("min", "max")
    gated = ruled and rule.get("gate", True) is not False
    verdict = _MARKS.get(row.mark, row.mark)
    if row.mark == "worse":
        warn = rule.get("warn") if ruled else None
        within = (warn is not None and row.change is not None and isinstance(row.b, int | float)
                  and judge(row.change, float(row.b), {**rule, "tolerance": warn}) != "worse")
        verdict = "warn" if within else "regressed"
    elif row.mark == "changed" and ruled and _is_number(row.b) and not _is_number(row.a):
        verdict = "regressed"  # a number that became NaN, infinite or text
    failing = gated and (verdict == "regressed" or (
        verdict == "missing" and not rule.get("allow_missing", False)))
    return MetricVerdict(row.key, row.a, row.b, row.change, row.relative, verdict,
                         gated, failing)


def _is_number(value: Any) -> bool:
    import math

    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def judge_experiment(exp: IndexedExperiment, main: MainBuild | None, search: Search) -> GateResult:
    """The gate's verdicts for `exp` against `main`, by the metric rules of `exp`'s spec."""
    result = GateResult(experiment=exp, main=main, search=search)
    if main is None:
        result.verdict = FAILED if exp.status != "success" else NO_BASELINE
        return result
    rules = exp.rules or main.experiment.rules
    comparison = compare(_side(exp), _side(main.experiment), rules)
    result.params = [row for row in comparison.params if row.changed]
    verdicts = [metric_verdict(row, rules.get(row.key)) for row in comparison.metrics]
    result.metrics = sorted(verdicts, key=lambda m: (
        not m.failing, METRIC_ORDER.index(m.verdict) if m.verdict in METRIC_ORDER else 9, m.key))
    if exp.status != "success":
        result.verdict = FAILED
    elif result.failing:
        result.verdict = REGRESSED
    elif any(m.verdict == "warn" for m in result.metrics):
        result.verdict = WARNED
    return result


@struct
class Gate:
    """What `gate_experiments` needs to know once for every experiment it judges."""

    git: Git
    settings: Settings
    rev: str
    remote: str | None
    fetch: bool


def open_gate(root: Path, *, against: str | None = None, fetch: bool = True) -> Gate:
    """The settings, remote and main revision of the project at `root`."""
    git = Git(root)
    settings = load_settings(root)
    remote = default_remote(git, settings)
    rev = against or main_branch(git, settings, remote)
    return Gate(git, settings, rev, remote, fetch)


def select_experiments(
    git: Git, index: Index, names: list[str], *, every: bool = False
) -> list[IndexedExperiment]:
    """The named experiments; without names the latest under HEAD (`every`: all of them)."""
    if not names:
        head = git.head_commit()
        under_head = index.experiments(head)
        if not under_head:
            raise ExperimentError(
                f"no experiment is recorded against HEAD ({head[:10]})",
                hint="run one first (tether run), or name the experiment to gate")
        return under_head if every else [under_head[-1]]
    chosen = []
    tip = git.resolve("HEAD")
    for text in names:
        # A name under HEAD's baseline is found in the refs the index just read; anything
        # else (other baselines, prefixes, ambiguity) goes through the one resolver.
        ref_name = f"{EXPS_REFS}{tip}/{text.strip()}"
        found = ([e for e in index.experiments(tip) if e.ref == ref_name]
                 if tip and ref_name in index.refs else [])
        if found:
            chosen += found
            continue
        ref = resolve_experiment(git, text)
        found = [e for e in index.experiments(ref.baseline) if e.ref == ref.ref]
        if not found:
            one_experiment(git, ref)  # raises, naming what is wrong with its record
            raise ExperimentError(f"experiment {text!r} is not in the index")
        chosen.append(found[0])
    return chosen


def gate_experiments(
    gate: Gate, names: list[str], *, every: bool = False
) -> list[GateResult]:
    """Each experiment judged against the last main build (searched once per name)."""
    index = refresh(gate.git)
    try:
        chosen = select_experiments(gate.git, index, names, every=every)
        results, index = judge_against_main(gate, index, chosen)
        return results
    finally:
        index.close()


def judge_against_main(
    gate: Gate, index: Index, chosen: list[IndexedExperiment]
) -> tuple[list[GateResult], Index]:
    """Each of `chosen` judged against the last main build, and the index (refreshed
    when main's refs were fetched: the caller closes that one)."""
    found, search, index = find_main_commit(
        gate.git, index, gate.rev, skip=frozenset(e.baseline for e in chosen),
        depth=gate.settings.depth, remote=gate.remote, fetch=gate.fetch)
    if found is not None:
        found = found.originals(gate.git)
    return [judge_experiment(exp, found.build_for(exp.name) if found else None, search)
            for exp in chosen], index


def overall(results: list[GateResult]) -> str:
    """The worst verdict of several experiments' gates."""
    order = (FAILED, REGRESSED, NO_BASELINE, WARNED, PASSED)
    verdicts = {r.verdict for r in results}
    return next((v for v in order if v in verdicts), PASSED)
