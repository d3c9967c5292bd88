"""From experiments' tables to charts: which kind, which fields, one series per experiment.

The kind follows DVC's common templates, recognised by field names: `actual`/`predicted`
(confusion matrix), `fpr`/`tpr` (ROC), `precision`/`recall` (PR), otherwise one chart
per numeric field against `step` (or `epoch`, or the row number): a line, or a scatter
when x does not grow. Series with the same source and field are overlaid.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from tether.plots.data import ExperimentData
from tether.structs import struct

_CONFUSION = (("actual", "predicted"), ("y_true", "y_pred"), ("target", "prediction"),
              ("label", "prediction"))
_CURVES = {("fpr", "tpr"): "ROC", ("recall", "precision"): "precision-recall"}
_STEP_FIELDS = ("step", "epoch")
_NOT_PLOTTED = frozenset({"timestamp", "ts", "time", "step", "epoch", "threshold", "thresholds"})


@struct(frozen=True)
class Line:
    """One experiment's points in a line or scatter chart."""

    experiment: str
    points: list[tuple[float, float]]


@struct(frozen=True)
class Matrix:
    """One experiment's confusion matrix: counts[actual][predicted] over `labels`."""

    experiment: str
    labels: list[str]
    counts: list[list[int]]


@struct(frozen=True)
class Chart:
    """One picture: kind is line, scatter or confusion."""

    title: str
    kind: str
    x_label: str
    y_label: str
    lines: list[Line]
    matrices: list[Matrix]


def number(value: Any) -> float | None:
    """A finite number, or None (bools, strings such as "NaN", missing values)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def build_charts(experiments: list[ExperimentData]) -> list[Chart]:
    """Every chart the experiments' series make, in the order their sources first appear."""
    by_source: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for exp in experiments:
        for series in exp.series:
            by_source.setdefault(series.source, []).append((exp.name, series.rows))
    charts: list[Chart] = []
    for source, tables in by_source.items():
        charts += _charts_of(source, tables)
    return charts


def _fields(tables: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    names: dict[str, None] = {}
    for _, rows in tables:
        for row in rows:
            names.update(dict.fromkeys(row))
    return list(names)


def _charts_of(source: str, tables: list[tuple[str, list[dict[str, Any]]]]) -> list[Chart]:
    fields = _fields(tables)
    lowered = {f.lower(): f for f in fields}
    for actual, predicted in _CONFUSION:
        if actual in lowered and predicted in lowered:
            return [_confusion(source, tables, lowered[actual], lowered[predicted])]
    for (x, y), name in _CURVES.items():
        if x in lowered and y in lowered:
            return [_xy_chart(f"{name}: {source}", "line", tables, lowered[x], lowered[y],
                              sort=True)]
    x_field = next((lowered[f] for f in _STEP_FIELDS if f in lowered), None)
    charts = []
    for field in fields:
        if field.lower() in _NOT_PLOTTED or field == x_field:
            continue
        if not any(number(row.get(field)) is not None for _, rows in tables for row in rows):
            continue
        chart = _xy_chart(f"{field}: {source}", "line", tables, x_field, field, sort=False)
        if any(_decreasing(line.points) for line in chart.lines):
            chart = Chart(title=chart.title, kind="scatter", x_label=chart.x_label,
                          y_label=chart.y_label, lines=chart.lines, matrices=[])
        charts.append(chart)
    return charts


def _decreasing(points: list[tuple[float, float]]) -> bool:
    return any(b[0] < a[0] for a, b in itertools.pairwise(points))


def _xy_chart(title: str, kind: str, tables: list[tuple[str, list[dict[str, Any]]]],
              x_field: str | None, y_field: str, *, sort: bool) -> Chart:
    lines = []
    for experiment, rows in tables:
        points = []
        for index, row in enumerate(rows):
            x = number(row.get(x_field)) if x_field else float(index)
            y = number(row.get(y_field))
            if x is not None and y is not None:
                points.append((x, y))
        if points:
            lines.append(Line(experiment, sorted(points) if sort else points))
    return Chart(title=title, kind=kind, x_label=x_field or "row", y_label=y_field,
                 lines=lines, matrices=[])


def _confusion(source: str, tables: list[tuple[str, list[dict[str, Any]]]], actual: str,
               predicted: str) -> Chart:
    labels = sorted({str(row.get(f)) for _, rows in tables for row in rows
                     for f in (actual, predicted)})
    position = {label: i for i, label in enumerate(labels)}
    matrices = []
    for experiment, rows in tables:
        counts = [[0] * len(labels) for _ in labels]
        for row in rows:
            counts[position[str(row.get(actual))]][position[str(row.get(predicted))]] += 1
        matrices.append(Matrix(experiment, labels, counts))
    return Chart(title=f"confusion matrix: {source}", kind="confusion", x_label=predicted,
                 y_label=actual, lines=[], matrices=matrices)
