"""`/api/compare`: 2 to 100 experiments side by side, and the gate's verdict on each.

Params: only those that differ. Metrics: each experiment's value, the best one by the
declared direction (successful runs only, as `tether show` ranks them), and a mark per
experiment against the first one named, made by `tether diff`'s comparison
(`experiments/compare.py`). The gate (`feedback/gate.py`) judges each against the last
main build when one is found locally (nothing is fetched on the way).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tether.errors import TetherError, UsageError
from tether.experiments.compare import Side, compare
from tether.experiments.explore import best_values, varying_params
from tether.experiments.index import IndexedExperiment
from tether.status import SUCCESS
from tether.web.detail import find_experiment
from tether.web.responses import JSON
from tether.web.state import Viewer, viewer_of

MAX_COMPARED = 100
_MARKS = {"better": "better", "worse": "worse", "same": "same"}


def _side(exp: IndexedExperiment) -> Side:
    return Side(label=exp.name, commit=exp.commit, ref=exp.ref, params=exp.params,
                metrics=exp.metrics, status=exp.status)


def _metrics(chosen: list[IndexedExperiment]) -> dict[str, Any]:
    keys = sorted({k for exp in chosen for k in exp.metrics})
    directions, best = best_values(chosen, keys)
    reference = chosen[0]
    rules = reference.rules or next((e.rules for e in chosen if e.rules), {})
    marks: dict[str, dict[str, str | None]] = {key: {reference.name: None} for key in keys}
    for exp in chosen[1:]:
        for row in compare(_side(exp), _side(reference), rules).metrics:
            marks[row.key][exp.name] = _MARKS.get(row.mark)
    found = {}
    for key in keys:
        winners = [e.name for e in chosen if e.status == SUCCESS and key in best
                   and e.metrics.get(key) == best[key]]
        found[key] = {
            "direction": directions.get(key),
            "values": {e.name: e.metrics.get(key) for e in chosen},
            "best": winners[0] if winners else None,
            "marks": marks[key],
        }
    return found


def _gate(viewer: Viewer, chosen: list[IndexedExperiment]) -> dict[str, Any] | None:
    """Each experiment judged against the last main build; None when there is none."""
    from tether.experiments.index import refresh
    from tether.feedback.gate import judge_against_main, open_gate

    try:
        gate = open_gate(viewer.root, fetch=False)
        index = refresh(gate.git)
        try:
            results, index = judge_against_main(gate, index, chosen)
        finally:
            index.close()
    except TetherError:  # no main branch, a shallow clone...: no verdict to show
        return None
    if all(result.main is None for result in results):
        return None
    return {"rev": gate.rev, "verdicts": {r.experiment.name: r.verdict for r in results},
            "results": [r.to_json() for r in results]}


def _step_metrics(viewer: Viewer, chosen: list[IndexedExperiment]) -> list[str]:
    """The step metrics every chosen experiment recorded (from their records, read once
    per commit by `web/series.py`, which keeps their columns for the plots to come)."""
    found = viewer.steps_store.metric_names(viewer.catalog.git, [e.commit for e in chosen])
    return sorted(frozenset.intersection(*found)) if found else []


def compare_experiments(request: Request) -> JSON:
    viewer = viewer_of(request)
    names = list(dict.fromkeys(
        n for n in request.query_params.get("names", "").split(",") if n.strip()))
    if not 2 <= len(names) <= MAX_COMPARED:
        raise UsageError(f"names: give 2 to {MAX_COMPARED} experiment names, comma-separated")
    chosen = [find_experiment(viewer, name) for name in names]
    differing = varying_params(chosen) if len(chosen) > 1 else []
    return JSON({
        "names": names,
        "params_differing": {key: {e.name: e.params.get(key) for e in chosen}
                             for key in differing},
        "metrics": _metrics(chosen),
        "gate": _gate(viewer, chosen),
        "step_metrics": _step_metrics(viewer, chosen),
    })
