"""Step metrics of a record as float columns: per metric, the (step, seconds, value)
of the first stage that logged it.

What `tether view` plots and what `.tether/view/steps/` keeps (`record/stepfiles.py`).
The rows are turned into `array('d')` columns with list comprehensions, NaN where a
row has no number, so a hostile record can only make its own series empty or short:
rows that are not objects, values that are not finite numbers and oversized integers
are left out of the plots, as `web/steps.points_of` leaves them.
"""

from __future__ import annotations

import contextlib
from array import array
from itertools import repeat
from typing import Any, Union

_NAN = float("nan")
_NUMBERS = {int, float}
_NOT_METRICS = frozenset(("step", "ts"))

# A column of doubles: an array made from rows, or a read-only view of a kept file's bytes.
Column = Union["array[float]", "memoryview[float]"]
Columns = tuple[Column, Column, Column]


def _floats(values: list[Any]) -> array[float]:
    """The values as doubles; NaN for what is not an int or float (bools included)."""
    if set(map(type, values)) <= _NUMBERS:  # the usual case: converted in C
        with contextlib.suppress(OverflowError):
            return array("d", values)
    try:
        return array("d", [v if type(v) is float or type(v) is int else _NAN for v in values])
    except OverflowError:  # an integer too big for a double: left out like a non-number
        return array("d", [_as_float(v) for v in values])


def _column(rows: list[dict[str, Any]], key: str) -> list[Any]:
    """Each row's value of `key` (None where it has none)."""
    return list(map(dict.get, rows, repeat(key)))


def _as_float(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        return _NAN
    try:
        return float(value)
    except OverflowError:
        return _NAN


def _seconds(row: dict[str, Any]) -> Any:
    """A row's wall time: `ts` in seconds, else dvclive's `timestamp` in milliseconds."""
    stamp = row.get("timestamp")
    if type(stamp) is float or type(stamp) is int:
        return _as_float(stamp) / 1000.0
    return None


def finite(column: array[float]) -> bool:
    """Whether every value is finite: their sum is, unless one is not (or it overflows,
    which only sends such columns the long way)."""
    total = sum(column)
    return total - total == 0.0


class RecordSteps:
    """What one record holds of step metrics: names, and its rows while being read."""

    def __init__(self, steps: dict[str, Any]) -> None:
        self._stages: list[tuple[list[dict[str, Any]], set[str]]] = []
        self._axes: dict[int, tuple[array[float], array[float]]] = {}
        for rows in steps.values():
            if isinstance(rows, list) and rows:
                if set(map(type, rows)) != {dict}:
                    rows = [row if type(row) is dict else {} for row in rows]
                self._stages.append((rows, set().union(*rows)))
        self.rows = sum(len(rows) for rows, _ in self._stages)
        self.names = frozenset().union(*(keys for _, keys in self._stages)) - _NOT_METRICS

    def length(self, metric: str) -> int:
        """How many points `columns(metric)` gives (0 when no stage names it)."""
        return next((len(rows) for rows, keys in self._stages if metric in keys), 0)

    def values(self) -> int:
        """How many values the rows hold, steps and times included."""
        return sum(sum(map(len, rows)) for rows, _ in self._stages)

    def columns(self, metric: str) -> Columns | None:
        """The columns of the first stage whose rows name `metric`; None when none does."""
        for index, (rows, keys) in enumerate(self._stages):
            if metric in keys:
                steps, seconds = self._stage_axes(index)
                return steps, seconds, _floats(_column(rows, metric))
        return None

    def _stage_axes(self, index: int) -> tuple[array[float], array[float]]:
        if index not in self._axes:
            rows = self._stages[index][0]
            steps = _column(rows, "step")
            if None in steps:  # rows without a step are placed by their position
                steps = [row.get("step", position) for position, row in enumerate(rows)]
            seconds = _floats(_column(rows, "ts"))
            if not finite(seconds):  # some rows timed otherwise (dvclive), or not at all
                seconds = _floats([t if (type(t) is float or type(t) is int) and t - t == 0
                                   else _seconds(row) for t, row in zip(seconds, rows,
                                                                        strict=True)])
            self._axes[index] = (_floats(steps), seconds)
        return self._axes[index]
