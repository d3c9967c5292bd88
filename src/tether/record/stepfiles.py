"""Step series kept on disk for `tether view`, under `.tether/view/steps/`.

A commit's record never changes, so the columns `record/stepcolumns.py` makes of it stay
true: one file per (commit, metric) — a header, the point count, then the step, seconds
and value columns as little-endian doubles — and one per commit with its step metric
names. They are written when a run is recorded (`execute/runner.py`) and when the index
first reads a record that came from elsewhere (`experiments/index.py`: a pull, a fetch),
so the viewer's first look at long series reads no record; the viewer keeps those it
reads itself (`web/series.py`). Files are written whole under a temporary name then
renamed, so a reader sees an old file or a new one; one whose size does not match its
header is ignored (and made again). Only long series are kept (reading a short record
costs less than a file); what one record may cost is bounded by the values it holds.
File names derive from a validated commit id and a hash of the metric's name. The
directory is a cache: deleting it loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

from tether.layout import LONG_STEP_SERIES, view_steps_dir
from tether.record.stepcolumns import Column, Columns, RecordSteps

_MAGIC = b"tether-steps 1\n"
_COUNT = 8  # bytes of the point count after the header
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MIN_POINTS = LONG_STEP_SERIES  # shorter series are not written: their record reads fast
# Floats written per value a record holds: dense metrics cost 3 per row, so only a record
# of many sparse metrics meets the bound, and a hostile one cannot fill the disk.
FLOATS_PER_VALUE = 8
_NONE: Columns = (array("d"), array("d"), array("d"))


class SeriesFiles:
    """The series files of one repository (`directory`: where they live)."""

    def __init__(self, directory: Path, min_points: int = MIN_POINTS) -> None:
        self.directory = directory
        self.min_points = min_points  # shorter series are not kept

    def _path(self, commit: str, what: str) -> Path | None:
        if not _COMMIT.fullmatch(commit):
            return None
        digest = hashlib.sha256(what.encode(errors="surrogatepass")).hexdigest()[:32]
        return self.directory / commit[:2] / f"{commit[2:]}.{digest}"

    def load(self, commit: str, metric: str) -> Columns | None:
        """The columns kept of `metric` at `commit`; None when none are (or they are bad)."""
        path = self._path(commit, "metric:" + metric)
        try:
            data = path.read_bytes() if path is not None else b""
        except OSError:
            return None
        head = len(_MAGIC) + _COUNT
        if not data.startswith(_MAGIC) or len(data) < head:
            return None
        count = int.from_bytes(data[len(_MAGIC):head], "little")
        if len(data) != head + 24 * count:
            return None
        columns: list[Column] = []
        view = memoryview(data)
        for start in range(head, head + 24 * count, 8 * count):
            if sys.byteorder == "little":  # a view of the bytes read: no copy of 2.4 MB
                columns.append(view[start:start + 8 * count].cast("d"))
                continue
            column = array("d")
            column.frombytes(data[start:start + 8 * count])
            column.byteswap()
            columns.append(column)
        return columns[0], columns[1], columns[2]

    def save(self, commit: str, metric: str, columns: Columns) -> None:
        """Keep `columns` (if long enough to be worth a file); a failure to write is no error."""
        count = len(columns[0])
        if count < self.min_points or any(len(column) != count for column in columns):
            return
        parts = [_MAGIC, count.to_bytes(_COUNT, "little")]
        for column in columns:
            if sys.byteorder != "little":
                column = array("d", column)
                column.byteswap()
            parts.append(column.tobytes())
        self._write(self._path(commit, "metric:" + metric), b"".join(parts))

    def load_names(self, commit: str) -> frozenset[str] | None:
        names = self.load_json(commit, "names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return frozenset(names)

    def save_names(self, commit: str, names: frozenset[str], points: int) -> None:
        if points >= self.min_points:
            self.save_json(commit, "names", sorted(names))

    def load_json(self, commit: str, what: str) -> Any:
        """What `save_json` kept under `what` for `commit`; None when nothing readable."""
        path = self._path(commit, what)
        try:
            return json.loads(path.read_bytes()) if path is not None else None
        except (OSError, ValueError, RecursionError):
            return None

    def save_json(self, commit: str, what: str, value: Any) -> None:
        self._write(self._path(commit, what), _dumps(value))

    def _write(self, path: Path | None, data: bytes) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError:  # a read-only checkout: the cache is only a cache
            return
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except OSError:  # a full disk: no file rather than half of one
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def sweep_columns(root: Path, keep: set[str], *, dry: bool = False) -> tuple[int, int]:
    """Delete (or with `dry` only count) the kept columns and answers of every commit not
    in `keep`: (files, bytes). What is not a file of this cache's layout is left alone."""
    directory = view_steps_dir(root)
    files = size = 0
    try:
        folders = [d for d in directory.iterdir() if re.fullmatch(r"[0-9a-f]{2}", d.name)]
    except OSError:
        return 0, 0
    for folder in folders:
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                commit = folder.name + path.name.partition(".")[0]
                if not _COMMIT.fullmatch(commit) or commit in keep or not path.is_file():
                    continue
                with contextlib.suppress(OSError):
                    length = path.stat().st_size
                    if not dry:
                        path.unlink()
                    files, size = files + 1, size + length
            if not dry:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
    return files, size


def _dumps(value: Any) -> bytes:
    """`value` as JSON, by orjson when installed (ten times faster on a downsampled
    answer of 20 series); the values kept here are finite numbers, strings and lists."""
    try:
        import orjson
    except ImportError:
        return json.dumps(value).encode()
    return orjson.dumps(value)


def keep_columns(root: Path, commit: str, steps: Any) -> None:
    """Write the columns of the long step series of `steps` (the record's at `commit`),
    unless `commit`'s are kept already. Never raises: the files are only a cache."""
    if not isinstance(steps, dict) or not _COMMIT.fullmatch(commit) or not any(
            isinstance(rows, list) and len(rows) >= MIN_POINTS for rows in steps.values()):
        return
    files = SeriesFiles(view_steps_dir(root))
    if files.load_names(commit) is not None:
        return
    try:
        parsed = RecordSteps(steps)
        budget = FLOATS_PER_VALUE * parsed.values()
        for metric in sorted(parsed.names):
            cost = 3 * parsed.length(metric)
            if cost >= 3 * files.min_points and cost <= budget:
                budget -= cost
                files.save(commit, metric, parsed.columns(metric) or _NONE)
        files.save_names(commit, parsed.names, parsed.rows)  # last: the others are whole
    except Exception as exc:  # memory, a bug: the viewer still reads the record
        from tether.logs import get_logger

        get_logger("tether.stepfiles").warning("step_columns_not_kept", commit=commit,
                                                error=repr(exc))
