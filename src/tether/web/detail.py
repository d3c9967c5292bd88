"""One experiment: its page (`/api/experiments/NAME`) and its logs (`.../logs`).

Names are found in the catalog (a name recorded under several baselines means HEAD's,
as `tether show` and `tether logs` take it); anything else (a commit prefix,
`BASELINE/NAME`, a full ref) goes through the one resolver. A run still in progress in
the work tree has no record yet: its page says `running` with what its files show.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tether.errors import ExperimentError, UsageError
from tether.experiments.index import IndexedExperiment
from tether.experiments.manage import recorded_logs
from tether.experiments.resolve import head_or_none, one_experiment, resolve_experiment
from tether.gitstore.experiments import ExperimentRef
from tether.record.record import RunRecord
from tether.web.catalog import Snapshot, iso, row_json
from tether.web.live import RunningRun, find_running
from tether.web.responses import JSON
from tether.web.state import Viewer, viewer_of

MAX_TAIL = 100_000


def find_experiment(viewer: Viewer, text: str) -> IndexedExperiment:
    """The indexed experiment `text` names; ExperimentError (404) when there is none."""
    try:
        found = _lookup(viewer.catalog.snapshot(), text)
    except ExperimentError:
        found = None
    if found is None:  # recorded a moment ago? read the refs again, then say what is wrong
        found = _lookup(viewer.catalog.refresh_now(), text)
    if found is None:
        raise ExperimentError(f"experiment {text!r} is not in the index (unreadable record?)",
                              hint="`tether show -A` lists the readable ones")
    return found


def _lookup(snapshot: Snapshot, text: str) -> IndexedExperiment | None:
    named = snapshot.by_name.get(text, [])
    if len(named) == 1:
        return named[0]
    if named:
        head = head_or_none(snapshot.git)
        under_head = [e for e in named if e.baseline == head]
        if len(under_head) == 1:
            return under_head[0]
    # prefixes, BASELINE/NAME, full refs; an unknown or ambiguous name raises
    ref = resolve_experiment(snapshot.git, text)
    return next((e for e in snapshot.experiments if e.ref == ref.ref), None)


def _ref_of(exp: IndexedExperiment) -> ExperimentRef:
    return ExperimentRef(exp.ref, exp.baseline, exp.name, exp.commit)


def _outputs(viewer: Viewer, record: RunRecord) -> list[dict[str, Any]]:
    from tether.cache.hashing import is_dir_key
    from tether.cache.objects import valid_key
    from tether.project import object_store

    store = object_store(viewer.root)
    outputs = []
    for stage in record.stages:
        for path, key in sorted(stage.outs.items()):
            size = None
            if key and valid_key(key) and not is_dir_key(key) and store.has(key):
                size = store.size(key)
            outputs.append({"path": path, "hash": key, "size": size, "stage": stage.name})
    return outputs


def experiment(request: Request) -> JSON:
    viewer = viewer_of(request)
    name = request.path_params["name"]
    run = find_running(viewer.root, name)
    if run is not None:
        return JSON(_running_json(run))
    exp = find_experiment(viewer, name)
    record = one_experiment(viewer.catalog.git, _ref_of(exp)).run_record
    code = dict(record.code)
    body = {
        **row_json(exp, viewer.catalog.labels()),
        "stages": [{"name": s.name, "status": s.status, "duration": s.duration,
                    "exit_code": s.exit_code, "reasons": s.reasons, "error": s.error,
                    "attempt": s.attempt} for s in record.stages],
        "environment": record.environment,
        "diff": str(code.pop("diff", "") or ""),
        "code": code,
        "outputs": _outputs(viewer, record),
        "commit": exp.commit,
        "code_commit": code.get("commit"),
        "branch": record.branch,
        "error": record.error,
        "step_metrics": sorted({k for rows in record.steps.values() if isinstance(rows, list)
                                for row in rows if isinstance(row, dict) for k in row}
                               - {"step", "ts"}),
        "running": False,
    }
    return JSON(body)


def _running_json(run: RunningRun) -> dict[str, Any]:
    return {
        "name": run.name, "ref": None, "commit": None, "baseline": None, "baseline_names": [],
        "created": iso(run.started) if run.started else None, "status": "running",
        "duration": None, "message": "", "params": {}, "metrics": {}, "stages": [],
        "environment": {}, "diff": "", "code": {}, "outputs": [], "code_commit": None,
        "branch": None, "error": None, "step_metrics": sorted(run.new_steps({})),
        "running": True, "run_id": run.run_id, "where": run.where,
    }


def _tail_arg(request: Request) -> int:
    text = request.query_params.get("tail", "500")
    try:
        tail = int(text)
    except ValueError:
        raise UsageError(f"tail must be a whole number, not {text!r}") from None
    if not 0 <= tail <= MAX_TAIL:
        raise UsageError(f"tail must be between 0 and {MAX_TAIL}, not {tail}")
    return tail


def logs(request: Request) -> JSON:
    """The last `tail` lines of the logs (one stage's with `stage=`), each `[stage] line`
    when several stages are shown; `offset` is the number of lines before them."""
    viewer = viewer_of(request)
    name = request.path_params["name"]
    stage = request.query_params.get("stage") or None
    tail = _tail_arg(request)
    run = find_running(viewer.root, name)
    if run is not None:
        texts = [(s, "\n".join(lines)) for s, lines in run.new_lines({})
                 if stage is None or s == stage]
    else:
        exp = find_experiment(viewer, name)
        texts = [(log.stage, log.text)
                 for log in recorded_logs(viewer.catalog.git, _ref_of(exp), stage)]
    lines: list[str] = []
    for stage_name, text in texts:
        prefix = f"[{stage_name}] " if len(texts) > 1 else ""
        lines += [prefix + line for line in text.splitlines()]
    start = max(0, len(lines) - tail)
    return JSON({"lines": lines[start:], "offset": start,
                 "stages": [s for s, _ in texts]})
