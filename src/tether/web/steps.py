"""`/api/steps`: one step metric of several experiments, downsampled for a plot.

Series come from what `tether plots` reads (`plots/data.py`: the record's `tether.log`
steps per stage, dvclive's files in the experiment's tree), or from the step files of
the run in progress. Each is cut to about `points` points with LTTB. Answers are kept
per (commit, metric, x, points): records never change, so a compare page re-plotted or
re-opened costs nothing the second time.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from tether.errors import UsageError
from tether.web.downsample import lttb
from tether.web.responses import JSON
from tether.web.state import Viewer, viewer_of

MAX_NAMES = 100
MAX_POINTS = 100_000
_X_AXES = ("step", "time")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


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


def _recorded_rows(viewer: Viewer, name: str, metric: str) -> tuple[str, list[dict[str, Any]]]:
    """(commit, rows of the first series holding `metric`) of a recorded experiment."""
    from tether.experiments.explore import read_records
    from tether.plots.data import experiment_data
    from tether.web.detail import find_experiment

    exp = find_experiment(viewer, name)
    record = read_records(viewer.catalog.git, [exp.commit])[0]
    data = experiment_data(viewer.catalog.git, exp.name, exp.commit,
                           record.to_json() if record is not None else {})
    for series in data.series:
        if any(metric in row for row in series.rows):
            return exp.commit, series.rows
    return exp.commit, []


def _series(viewer: Viewer, name: str, metric: str, x_axis: str, points: int) -> dict[str, Any]:
    from tether.web.live import find_running

    run = find_running(viewer.root, name)
    if run is not None:  # in progress: read now, keep nothing
        found = run.new_steps({}).get(metric, [])
        rows = [{"step": step, "ts": ts, metric: value} for step, value, ts in found]
        return _downsampled(name, rows, metric, x_axis, points)
    commit, rows = _recorded_rows(viewer, name, metric)
    key = (commit, metric, x_axis, points)
    cached: dict[str, Any] | None = viewer.series_cache.get(key)
    if cached is None:
        cached = _downsampled(name, rows, metric, x_axis, points)
        viewer.series_cache.put(key, cached)
    return cached


def _downsampled(name: str, rows: list[dict[str, Any]], metric: str, x_axis: str,
                 points: int) -> dict[str, Any]:
    xs, ys = points_of(rows, metric, x_axis)
    kept_x, kept_y = lttb(xs, ys, points)
    return {"name": name, "x": kept_x, "y": kept_y, "total": len(xs)}


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
    viewer = viewer_of(request)
    names, metric, x_axis, points = _args(request)
    series = [{**_series(viewer, name, metric, x_axis, points), "name": name}
              for name in names]
    return JSON({"metric": metric, "x": x_axis, "series": series})
