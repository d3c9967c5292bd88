"""`/api/steps`: one step metric of several experiments, downsampled for a plot.

Series come from what `tether plots` reads (`plots/data.py`: the record's `tether.log`
steps per stage, dvclive's files in the experiment's tree), or from the step files of
the run in progress. Each is cut to about `points` points with LTTB. Records never
change: their columns are kept per (commit, metric) by `web/series.py`, which reads all
the records a request lacks in one batch, and the answers per (commit, metric, x,
points), so a compare page re-plotted or re-opened costs nothing the second time.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from tether.errors import UsageError
from tether.record.stepcolumns import Columns, RecordSteps
from tether.web.downsample import Floats, lttb
from tether.web.responses import JSON, FiniteJSON
from tether.web.series import axis
from tether.web.state import Viewer, viewer_of

if TYPE_CHECKING:
    from tether.web.live import RunningRun

MAX_NAMES = 100
MAX_POINTS = 100_000
_X_AXES = ("step", "time")
_NO_COLUMNS: Columns = (array("d"), array("d"), array("d"))


def _number(value: Any) -> float | None:
    """A finite int or float as a float; None for anything else (an integer too big for
    a double included, as the recorded columns leave it out)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def points_of(rows: list[dict[str, Any]], metric: str, x_axis: str
              ) -> tuple[list[float], list[float]]:
    """The (x, y) of `metric` in `rows`, sorted by x; non-numbers left out."""
    pairs = []
    first_time: float | None = None
    for position, row in enumerate(rows):
        y = _number(row.get(metric))
        if y is None:
            continue
        if x_axis == "step":
            x = _number(row.get("step", position))
        else:
            seconds = _number(row.get("ts"))
            if seconds is None and _number(row.get("timestamp")) is not None:
                seconds = float(row["timestamp"]) / 1000.0  # dvclive: milliseconds
            if seconds is not None and first_time is None:
                first_time = seconds
            x = None if seconds is None or first_time is None else seconds - first_time
        if x is not None:
            pairs.append((x, y))
    pairs.sort(key=lambda pair: pair[0])
    return [x for x, _ in pairs], [y for _, y in pairs]


def _dvclive_columns(viewer: Viewer, name: str, commit: str, metric: str) -> Columns:
    """The columns of `metric` in dvclive's files of the experiment's tree (what
    `tether plots` reads after the record's steps), empty when none has it."""
    from tether.plots.data import experiment_data

    data = experiment_data(viewer.catalog.git, name, commit, {})
    for series in data.series:
        if any(isinstance(row, dict) and metric in row for row in series.rows):
            return RecordSteps({"dvclive": series.rows}).columns(metric) or _NO_COLUMNS
    return _NO_COLUMNS


def _live(run: RunningRun, metric: str, x_axis: str, points: int) -> dict[str, Any]:
    found = run.new_steps({}).get(metric, [])
    rows = [{"step": step, "ts": ts, metric: value} for step, value, ts in found]
    return _downsampled(run.name, points_of(rows, metric, x_axis), points)


def _recorded(viewer: Viewer, names: list[str], metric: str, x_axis: str, points: int
              ) -> dict[str, dict[str, Any]]:
    """The downsampled series of recorded experiments: the answers kept per (commit,
    metric, x, points), the others from their records read in one batch."""
    from tether.web.detail import find_experiment

    commits = {name: find_experiment(viewer, name).commit for name in names}
    answers: dict[str, dict[str, Any]] = {}
    for name, commit in commits.items():
        cached = viewer.series_cache.get((commit, metric, x_axis, points))
        if cached is None:
            cached = _kept_answer(viewer, name, (commit, metric, x_axis, points))
        if cached is not None:
            answers[name] = cached
    todo = [name for name in names if name not in answers]
    found = viewer.steps_store.series(viewer.catalog.git, [commits[n] for n in todo], metric)
    for name, columns in zip(todo, found, strict=True):
        commit = commits[name]
        if columns is None:
            columns = _dvclive_columns(viewer, name, commit, metric)
            viewer.steps_store.remember(commit, metric, columns)
        answer = _downsampled(name, axis(columns, x_axis), points)
        viewer.series_cache.put((commit, metric, x_axis, points), answer)
        files = viewer.steps_store.files
        if files is not None and answer["total"] >= files.min_points:  # long: worth a file
            files.save_json(commit, _answer_file(metric, x_axis, points),
                            [answer["x"], answer["y"], answer["total"]])
        answers[name] = answer
    return answers


def _answer_file(metric: str, x_axis: str, points: int) -> str:
    return f"answer {x_axis} {points} {metric}"


def _kept_answer(viewer: Viewer, name: str, key: tuple[str, str, str, int]
                 ) -> dict[str, Any] | None:
    """The answer kept on disk by an earlier viewer, if it is whole."""
    files = viewer.steps_store.files
    kept = files.load_json(key[0], _answer_file(*key[1:])) if files is not None else None
    if not (isinstance(kept, list) and len(kept) == 3 and isinstance(kept[0], list)
            and isinstance(kept[1], list) and len(kept[0]) == len(kept[1])
            and type(kept[2]) is int):
        return None
    answer = {"name": name, "x": kept[0], "y": kept[1], "total": kept[2]}
    viewer.series_cache.put(key, answer)
    return answer


def _downsampled(name: str, xy: tuple[Sequence[float], Sequence[float]] | tuple[Floats, Floats],
                 points: int) -> dict[str, Any]:
    kept_x, kept_y = lttb(xy[0], xy[1], points)
    return {"name": name, "x": kept_x, "y": kept_y, "total": len(xy[0])}


def _args(request: Request) -> tuple[list[str], str, str, int]:
    query = request.query_params
    names = [n for n in query.get("names", "").split(",") if n.strip()]
    if not 1 <= len(names) <= MAX_NAMES:
        raise UsageError(f"names: give 1 to {MAX_NAMES} experiment names, comma-separated")
    metric = query.get("metric", "")
    if not metric:
        raise UsageError("metric: name the step metric to plot")
    x_axis = query.get("x", "step")
    if x_axis not in _X_AXES:
        raise UsageError(f"x must be step or time, not {x_axis!r}")
    try:
        points = int(query.get("points", "1200"))
    except ValueError:
        raise UsageError("points must be a whole number") from None
    if not 2 <= points <= MAX_POINTS:
        raise UsageError(f"points must be between 2 and {MAX_POINTS}, not {points}")
    return list(dict.fromkeys(names)), metric, x_axis, points


def steps(request: Request) -> JSON:
    from tether.web.live import running_runs

    viewer = viewer_of(request)
    names, metric, x_axis, points = _args(request)
    live = {run.name: run for run in running_runs(viewer.root) if run.name in names}
    answers = _recorded(viewer, [n for n in names if n not in live], metric, x_axis, points)
    for name, run in live.items():  # in progress: read now, keep nothing (the newest run)
        answers[name] = _live(run, metric, x_axis, points)
    series = [{**answers[name], "name": name} for name in names]
    return FiniteJSON({"metric": metric, "x": x_axis, "series": series})
