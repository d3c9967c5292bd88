"""Step series of recorded experiments, read once per commit and kept as float arrays.

A commit's record never changes, so what is parsed from it stays true: the names of its
step metrics, and per metric the (step, seconds, value) columns of the first stage that
logged it (`record/stepcolumns.py`). Long series are usually on disk already
(`record/stepfiles.py`, written when the run was recorded or its ref first indexed);
the others' records are read in one `git cat-file --batch`, each decoded and validated
once (`load_record`, as the index reads them). Everything is kept in a
least-recently-used cache bounded by the floats it holds, so 20 runs × 100,000 steps
cost at most one read each."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tether.gitstore.git import Git
from tether.record.stepcolumns import Columns, RecordSteps
from tether.record.stepfiles import SeriesFiles
from tether.web.lru import LRU

if TYPE_CHECKING:
    from tether.web.downsample import Floats

EAGER_METRICS = 8  # metrics of a record turned into columns when it is read; others lazily
DEFAULT_FLOATS = 24_000_000  # ≈ 190 MB of columns

_EMPTY: Columns = (array("d"), array("d"), array("d"))


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


def axis(columns: Columns, x_axis: str) -> tuple[Floats, Floats]:
    """The finite (x, y) of `columns` sorted by x: x the step (or row position), or the
    seconds since the first timed point — what `steps.points_of` makes of the rows.
    Views of the columns when they are already finite and sorted (the usual case), so a
    100,000-point series costs a few vectorised checks, not a Python object per point."""
    import numpy as np

    steps, seconds, values = columns
    xs = np.asarray(steps if x_axis == "step" else seconds, dtype=np.float64)  # views, no copies
    ys = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not keep.all():
        xs, ys = xs[keep], ys[keep]
    if x_axis != "step" and len(xs):
        xs = xs - xs[0]
    if len(xs) > 1 and not bool((xs[1:] >= xs[:-1]).all()):
        order = np.argsort(xs, kind="stable")  # equal x keep their order, as sort() does
        xs, ys = xs[order], ys[order]
    return xs, ys


def _weight(columns: Columns) -> int:
    return sum(len(column) for column in columns)


class SeriesStore:
    """Step metrics of recorded experiments by commit, read in batches and cached in
    memory, and on disk when `files` is given (`record/stepfiles.py`)."""

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
