"""The experiments the viewer serves: the index held in memory, queried per request.

The index (`experiments/index.py`) is refreshed from the refs at most every `ttl`
seconds, in a background thread after the first time, so a request never waits for
`git for-each-ref` once the server is up. A refresh that finds the refs unchanged keeps
the current snapshot, with its decoded params and its cache of recent queries: paging
through a sorted, filtered selection of 100,000 experiments sorts and filters it once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether.experiments.explore import (
    baseline_labels,
    best_values,
    matching,
    sort_experiments,
    varying_params,
)
from tether.experiments.index import IndexedExperiment, refresh
from tether.gitstore.git import Git

SORT_KEYS = ("name", "created", "status", "duration")
DEFAULT_LIMIT = 200
MAX_LIMIT = 5000
QUERIES_KEPT = 16  # sorted selections remembered per snapshot (paging reuses them)


class LRU:
    """A small thread-safe cache of the most recently used answers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Selection:
    """One filtered, sorted selection of a snapshot, with what the table needs about it."""

    def __init__(self, experiments: list[IndexedExperiment]) -> None:
        self.experiments = experiments
        self._summary: dict[str, Any] | None = None

    def summary(self, snapshot: Snapshot) -> dict[str, Any]:
        """Columns, best values and baselines of the whole selection (computed once)."""
        if self._summary is None:
            self._summary = _summarize(self.experiments, snapshot)
        return self._summary


class Snapshot:
    """The experiments as of one reading of the refs, and per-snapshot caches."""

    def __init__(self, git: Git, experiments: list[IndexedExperiment],
                 refs: dict[str, str]) -> None:
        self.git = git
        self.experiments = experiments  # oldest first
        self.refs = refs
        self.by_name: dict[str, list[IndexedExperiment]] = {}
        for exp in experiments:
            self.by_name.setdefault(exp.name, []).append(exp)
        self._labels: dict[str, list[str]] | None = None
        self._subjects: dict[str, str] | None = None
        self._selections = LRU(QUERIES_KEPT)

    @property
    def labels(self) -> dict[str, list[str]]:
        """Baseline sha → branch and tag names."""
        if self._labels is None:
            self._labels = baseline_labels(self.git)
        return self._labels

    @property
    def subjects(self) -> dict[str, str]:
        """Baseline sha → the subject line of its commit (one git call for all)."""
        if self._subjects is None:
            shas = sorted({exp.baseline for exp in self.experiments if exp.baseline})
            proc = self.git.run("log", "--no-walk=unsorted", "--stdin", "--format=%H %s",
                                input="".join(f"{sha}\n" for sha in shas), check=False)
            found = {}
            for line in proc.stdout.decode(errors="replace").splitlines():
                sha, _, subject = line.partition(" ")
                found[sha] = subject
            self._subjects = found
        return self._subjects

    def select(self, expression: str, sort: str, descending: bool) -> Selection:
        """The experiments `expression` accepts, sorted by `sort` (a column of the filter)."""
        key = (expression, sort, descending)
        cached: Selection | None = self._selections.get(key)
        if cached is not None:
            return cached
        found: list[IndexedExperiment] = self.experiments
        if expression.strip():
            from tether.experiments.filtering import parse_filter

            found = matching(found, parse_filter(expression))
        if sort == "created":  # already oldest first: no need to sort
            found = found[::-1] if descending else list(found)
        else:
            found = sort_experiments(found, sort, descending=descending)
        selection = Selection(found)
        self._selections.put(key, selection)
        return selection


def _summarize(experiments: list[IndexedExperiment], snapshot: Snapshot) -> dict[str, Any]:
    metric_keys = sorted({k for exp in experiments for k in exp.metrics})
    directions, best = best_values(experiments, metric_keys)
    best_names: dict[str, list[str]] = {metric: [] for metric in best}
    for exp in experiments:
        for metric, value in best.items():
            if exp.status == "success" and exp.metrics.get(metric) == value:
                best_names[metric].append(exp.name)
    counts: dict[str, int] = {}
    for exp in experiments:
        counts[exp.baseline] = counts.get(exp.baseline, 0) + 1
    labels, subjects = snapshot.labels, snapshot.subjects
    return {
        "columns": {
            "params": varying_params(experiments),
            "all_params": sorted({k for exp in experiments for k in exp.params}),
            "metrics": [{"name": m, "direction": directions.get(m)} for m in metric_keys],
        },
        "best": {m: {"value": v, "names": best_names[m]} for m, v in best.items()},
        "baselines": [{"sha": sha, "names": labels.get(sha, []),
                       "subject": subjects.get(sha, ""), "count": count}
                      for sha, count in counts.items()],
    }


def sort_column(key: str) -> str:
    """The filter column of an API sort key (`param:lr` → `params.lr`)."""
    if key in SORT_KEYS:
        return key
    kind, _, name = key.partition(":")
    if kind in ("param", "metric") and name:
        return f"{kind}s.{name}"
    from tether.errors import UsageError

    raise UsageError(f"cannot sort by {key!r}",
                     hint="use name, created, status, duration, param:NAME or metric:NAME")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def row_json(exp: IndexedExperiment, labels: dict[str, list[str]]) -> dict[str, Any]:
    """One row of the experiments table."""
    return {
        "name": exp.name, "ref": exp.ref, "commit": exp.commit, "baseline": exp.baseline,
        "baseline_names": labels.get(exp.baseline, []), "created": iso(exp.created_at),
        "status": exp.status, "duration": exp.duration, "message": exp.message,
        "params": exp.params, "metrics": exp.metrics,
    }


class Catalog:
    """The current snapshot of the experiments of the repository at `root`."""

    def __init__(self, root: Path, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.git = Git(root)
        self.ttl = ttl
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def snapshot(self) -> Snapshot:
        """The latest snapshot; an old one starts a refresh in the background."""
        current = self._snapshot
        if current is None:
            with self._lock:
                if self._snapshot is None:
                    self._refresh()
            assert self._snapshot is not None
            return self._snapshot
        if self._clock() - self._read_at >= self.ttl and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_quietly, daemon=True).start()
        return current

    def warm(self) -> None:
        """Load the first snapshot now (in a thread at startup); errors wait for a request."""
        with contextlib.suppress(Exception):
            self.snapshot()

    def refresh_now(self) -> Snapshot:
        """Read the refs again now (after a write, or in tests)."""
        with self._lock:
            self._refresh()
        assert self._snapshot is not None
        return self._snapshot

    def _refresh_quietly(self) -> None:
        try:
            with self._lock:
                self._refresh()
        except Exception:  # the next request tries again; the old view stays meanwhile
            pass
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        self._read_at = self._clock()
        index = refresh(self.git)
        try:
            old = self._snapshot
            if old is not None and old.refs == index.refs:
                return
            self._snapshot = Snapshot(self.git, index.experiments(None), dict(index.refs))
        finally:
            index.close()
