"""What `tether plots` draws, read from recorded experiments.

Per experiment: the step-metric series of its record (`tether.log` per stage, and the
stages' `plots:` files), dvclive's `<dir>/plots/metrics/**/*.tsv` and `<dir>/metrics.json`
from the experiment's tree, and its final metrics. Nothing here draws.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from tether.errors import ExperimentError, SpecError
from tether.gitstore.git import Git
from tether.structs import struct

_DVCLIVE_SERIES = re.compile(r"(?:^|/)plots/metrics/.+\.tsv$")
DEFAULT_LIMIT = 10


@struct(frozen=True)
class Series:
    """One table of rows from one source (a stage's `tether.log`, a plots file...)."""

    source: str
    rows: list[dict[str, Any]]


@struct
class ExperimentData:
    """Everything plottable of one experiment."""

    name: str
    series: list[Series]
    metrics: dict[str, Any]


def load_experiments(git: Git, names: list[str], *, limit: int = DEFAULT_LIMIT
                     ) -> list[ExperimentData]:
    """The experiments `names` (default: the latest `limit` recorded against HEAD)."""
    from tether.experiments.resolve import head_or_none, readable, resolve_experiment, with_records
    from tether.gitstore.experiments import list_experiments

    if names:
        refs = [resolve_experiment(git, name) for name in names]
        found = with_records(git, list(dict.fromkeys(refs)))
        bad = [e for e in found if e.problem]
        if bad:
            raise ExperimentError(f"experiment {bad[0].ref.name!r} cannot be read: "
                                  f"{bad[0].problem}")
    else:
        head = head_or_none(git)
        found = readable(with_records(git, list_experiments(git, head)), None) if head else []
        found = sorted(found, key=lambda e: e.created_at)[-limit:]
        if not found:
            raise ExperimentError("no experiment is recorded against HEAD",
                                  hint="name experiments (`tether show -A` lists them), or "
                                  "`tether run` one")
    return [experiment_data(git, exp.ref.name, exp.ref.commit,
                             exp.record.to_json() if exp.record is not None else {})
            for exp in found]


def experiment_data(git: Git, name: str, commit: str, record: dict[str, Any]
                    ) -> ExperimentData:
    """The series and metrics of the experiment `name` at `commit`, whose record is given."""
    steps = record.get("steps") or {}
    series = [Series(source, rows) for source, rows in steps.items()
              if isinstance(rows, list) and rows]
    metrics = dict(record.get("metrics") or {})
    for path, rows in _dvclive_files(git, commit, exclude=set(steps)):
        if isinstance(rows, list):
            series.append(Series(path, rows))
        else:
            prefix = path.rpartition("/")[0]
            metrics.update({f"{prefix}/{k}": v for k, v in rows.items()})
    return ExperimentData(name=name, series=series, metrics=metrics)


def _dvclive_files(git: Git, commit: str, exclude: set[str]
                   ) -> list[tuple[str, list[dict[str, Any]] | dict[str, Any]]]:
    """dvclive's series (TSV) and final metrics (`metrics.json` beside a `plots/`) in the
    experiment's tree: (path, rows) and (path, metrics)."""
    from tether.record.metrics import read_metrics_file, read_step_file

    listing = git.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", commit).stdout
    paths = [p for p in listing.decode(errors="surrogateescape").split("\0") if p]
    series = [p for p in paths if _DVCLIVE_SERIES.search(p) and p not in exclude]
    live_dirs = {p.split("plots/metrics/")[0] for p in series}
    summaries = [p for p in paths
                 if p.endswith("metrics.json") and p[: -len("metrics.json")] in live_dirs
                 and p not in exclude]
    wanted = series + summaries
    if not wanted:
        return []
    blobs = git.run("cat-file", "--batch",
                    input="".join(f"{commit}:{p}\n" for p in wanted)).stdout
    found: list[tuple[str, list[dict[str, Any]] | dict[str, Any]]] = []
    pos = 0
    with tempfile.TemporaryDirectory(prefix="tether-plots-") as tmp:
        for path in wanted:
            end = blobs.index(b"\n", pos)
            size = int(blobs[pos:end].split()[2])
            data = blobs[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1
            # the readers take a file; the name keeps the suffix they go by
            local = Path(tmp) / PurePosixPath(path).name
            local.write_bytes(data)
            try:
                read = (read_step_file(local) if path in series else read_metrics_file(local))
            except SpecError:  # a broken file of the user's: left out of the plots
                continue
            found.append((path, read))
    return found
