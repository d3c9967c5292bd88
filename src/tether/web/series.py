"""Step series of recorded experiments, read once per commit and kept as float arrays.

A commit's record never changes, so what is parsed from it stays true: the names of its
step metrics, and per metric the (step, seconds, value) columns of the first stage that
logged it. Records of many commits are read in one `git cat-file --batch`; each is
decoded and validated once (`load_record`, as the index reads them) and the rows turned
into `array('d')` columns with list comprehensions, NaN where a row has no number.
Everything is kept in a least-recently-used cache bounded by the floats it holds, so
20 runs × 100,000 steps cost one read, and a hostile record can only make its own
series empty or short (rows that are not objects, values that are not finite numbers
and oversized integers are left out, as `steps.points_of` leaves them).
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter
from typing import Any

from tether.gitstore.git import Git
from tether.web.lru import LRU
from tether.web.seriesfiles import Columns, SeriesFiles

_NAN = float("nan")
_NUMBERS = {int, float}
_NOT_METRICS = frozenset(("step", "ts"))
EAGER_METRICS = 8  # metrics of a record turned into columns when it is read; others lazily
DEFAULT_FLOATS = 24_000_000  # ≈ 190 MB of columns

_EMPTY: Columns = (array("d"), array("d"), array("d"))


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


def record_steps(blob: bytes | None) -> dict[str, Any]:
    """The steps of a record blob that `load_record` accepts; {} for any other. Decoded
    by orjson when it is installed (four times faster on long records), else by json."""
    from tether.record.record import InvalidRecord, RunRecord, load_record

    try:
        import orjson

        data = orjson.loads(blob) if blob is not None else None
    except (ImportError, ValueError):  # no orjson; or what json reads and it does not
        data = None
    if data is None:
        record = load_record(blob)[0]
        return record.steps if record is not None else {}
    try:
        return RunRecord.from_json(data).steps
    except InvalidRecord:
        return {}


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
            if not _finite(seconds):  # some rows timed otherwise (dvclive), or not at all
                seconds = _floats([t if (type(t) is float or type(t) is int) and t - t == 0
                                   else _seconds(row) for t, row in zip(seconds, rows,
                                                                        strict=True)])
            self._axes[index] = (_floats(steps), seconds)
        return self._axes[index]


def axis(columns: Columns, x_axis: str) -> tuple[list[float], list[float]]:
    """The finite (x, y) of `columns` sorted by x: x the step (or row position), or the
    seconds since the first timed point — what `steps.points_of` makes of the rows."""
    steps, seconds, values = columns
    xs = steps if x_axis == "step" else seconds
    if x_axis == "step" and _finite(xs) and _finite(values):
        ordered = xs.tolist()
        if sorted(ordered) == ordered:  # the usual case, all in C: no pair per point
            return ordered, values.tolist()
    pairs = [(x, y) for x, y in zip(xs, values, strict=True) if x - x == 0.0 and y - y == 0.0]
    if x_axis != "step" and pairs:
        start = pairs[0][0]
        pairs = [(x - start, y) for x, y in pairs]
    pairs.sort(key=itemgetter(0))
    return [x for x, _ in pairs], [y for _, y in pairs]


def _finite(column: array[float]) -> bool:
    """Whether every value is finite: their sum is, unless one is not (or it overflows,
    which only sends such columns the long way)."""
    total = sum(column)
    return total - total == 0.0


def _weight(columns: Columns) -> int:
    return sum(len(column) for column in columns)


class SeriesStore:
    """Step metrics of recorded experiments by commit, read in batches and cached in
    memory, and on disk when `files` is given (`web/seriesfiles.py`)."""

    def __init__(self, files: SeriesFiles | None = None,
                 max_floats: int = DEFAULT_FLOATS) -> None:
        self.files = files
        self.columns = LRU(max_floats)  # (commit, metric) → Columns, _EMPTY if absent
        self.names = LRU(1_000_000)  # commit → frozenset of step metric names
        self.reads = 0  # records decoded: what the tests count

    def metric_names(self, git: Git, commits: list[str]) -> list[frozenset[str]]:
        """The step metric names of each commit's record (empty for an unreadable one)."""
        missing = []
        for commit in dict.fromkeys(commits):
            if self.names.get(commit) is None:
                kept = self.files.load_names(commit) if self.files else None
                if kept is None:
                    missing.append(commit)
                else:
                    self.names.put(commit, kept, len(kept) + 1)
        self._read(git, missing, ())
        return [self.names.get(c) or frozenset() for c in commits]

    def series(self, git: Git, commits: list[str], metric: str) -> list[Columns | None]:
        """Each commit's columns of `metric`; None where its record's steps lack it (or
        the record cannot be read), so other sources may be looked at."""
        missing = []
        for commit in dict.fromkeys(commits):
            if self.columns.get((commit, metric)) is None:
                kept = self.files.load(commit, metric) if self.files else None
                if kept is None:
                    missing.append(commit)
                else:
                    self.columns.put((commit, metric), kept, _weight(kept))
        self._read(git, missing, (metric,))
        found = [self.columns.get((c, metric)) for c in commits]
        return [None if f is None or not f[0] else f for f in found]

    def remember(self, commit: str, metric: str, columns: Columns) -> None:
        """Columns of `metric` found elsewhere than the record (dvclive's files)."""
        self._keep(commit, metric, columns)

    def _keep(self, commit: str, metric: str, columns: Columns) -> None:
        self.columns.put((commit, metric), columns, max(_weight(columns), 1))
        if self.files is not None:
            self.files.save(commit, metric, columns)

    def _read(self, git: Git, commits: list[str], wanted: Iterable[str]) -> None:
        from tether.gitstore.experiments import read_record_blobs

        if not commits:
            return
        for commit, blob in zip(commits, read_record_blobs(git, commits), strict=True):
            self.reads += 1
            parsed = RecordSteps(record_steps(blob))
            self.names.put(commit, parsed.names, len(parsed.names) + 1)
            if self.files is not None:
                self.files.save_names(commit, parsed.names, parsed.rows)
            eager = sorted(parsed.names)[:EAGER_METRICS]
            for metric in dict.fromkeys([*wanted, *eager]):
                self._keep(commit, metric, parsed.columns(metric) or _EMPTY)
