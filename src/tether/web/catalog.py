"""The experiments the viewer serves: the index held in memory, queried per request.

The index (`experiments/index.py`) is refreshed from the refs at most every `ttl`
seconds, in a background thread after the first time, so a request never waits for
`git for-each-ref` once the server is up. A refresh that finds the refs unchanged keeps
the current snapshot, with its decoded params and its cache of recent queries: paging
through a sorted, filtered selection of 100,000 experiments sorts and filters it once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
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
from tether.experiments.index import IndexedExperiment, index_path, refresh
from tether.gitstore.git import Git
from tether.web.lru import LRU

SORT_KEYS = ("name", "created", "status", "duration")
DEFAULT_LIMIT = 200
MAX_LIMIT = 5000
QUERIES_KEPT = 16  # sorted selections remembered per snapshot (paging reuses them)
WARM_PATIENCE = 3.0  # seconds the experiments wait to be read into memory for the first page


class Selection:
    """One filtered, sorted selection of a snapshot, with what the table needs about it."""

    def __init__(self, experiments: list[IndexedExperiment], expression: str,
                 baseline: str | None = None) -> None:
        self.experiments = experiments
        self.expression = expression
        self.baseline = baseline

    def summary(self, snapshot: Snapshot) -> dict[str, Any]:
        """Columns, best values and baselines of the whole selection (computed once per
        filter: sorting it another way changes none of them)."""
        key = (self.expression, self.baseline)
        found: dict[str, Any] | None = snapshot.summaries.get(key)
        if found is None:
            found = _summarize(self.experiments, snapshot)
            snapshot.summaries.put(key, found)
        return found


class Snapshot:
    """The experiments of one generation of the index, in memory, with recent selections."""

    def __init__(self, catalog: Catalog, experiments: list[IndexedExperiment],
                 generation: int) -> None:
        self.catalog = catalog
        self.git = catalog.git
        self.experiments = experiments  # oldest first
        self.generation = generation
        self.by_name: dict[str, list[IndexedExperiment]] = {}
        for exp in experiments:
            self.by_name.setdefault(exp.name, []).append(exp)
        self._selections = LRU(QUERIES_KEPT)
        self.summaries = LRU(QUERIES_KEPT)  # filter expression → Selection.summary

    def select(self, expression: str, sort: str, descending: bool,
               baseline: str | None = None) -> Selection:
        """The experiments `expression` accepts (of `baseline` only, if given), sorted by
        `sort` (a column of the filter)."""
        key = (expression, sort, descending, baseline)
        cached: Selection | None = self._selections.get(key)
        if cached is not None:
            return cached
        found: list[IndexedExperiment] = self.experiments
        if baseline is not None:
            found = [exp for exp in found if exp.baseline == baseline]
        if expression.strip():
            from tether.experiments.filtering import parse_filter

            found = matching(found, parse_filter(expression))
        if sort == "created":  # already oldest first: no need to sort
            found = found[::-1] if descending else list(found)
        else:
            found = sort_experiments(found, sort, descending=descending)
        selection = Selection(found, expression, baseline)
        self._selections.put(key, selection)
        return selection


def _summarize(experiments: list[IndexedExperiment], snapshot: Snapshot) -> dict[str, Any]:
    metric_keys = sorted({k for exp in experiments for k in exp.metrics})
    directions, best = best_values(experiments, metric_keys)
    best_names: dict[str, list[str]] = {metric: [] for metric in best}
    newest: dict[str, float] = {}
    counts: dict[str, int] = {}
    for exp in sorted(experiments, key=lambda e: e.created_at):
        for metric, value in best.items():
            if exp.status == "success" and exp.metrics.get(metric) == value:
                best_names[metric].append(exp.name)
        counts[exp.baseline] = counts.get(exp.baseline, 0) + 1
        newest[exp.baseline] = exp.created_at
    labels = snapshot.catalog.labels()
    subjects = snapshot.catalog.subjects(list(counts))
    return {
        "columns": {
            "params": varying_params(experiments),
            "all_params": sorted({k for exp in experiments for k in exp.params}),
            "metrics": [{"name": m, "direction": directions.get(m)} for m in metric_keys],
        },
        "best": {m: {"value": v, "names": best_names[m]} for m, v in best.items()},
        "baselines": [{"sha": sha, "names": labels.get(sha, []),
                       "subject": subjects.get(sha, ""), "count": count}
                      for sha, count in sorted(counts.items(),
                                               key=lambda item: -newest[item[0]])],
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


def refs_fingerprint(common_dir: Path) -> tuple[Any, ...] | None:
    """What changes whenever an experiment ref is added, moved or deleted: the stat of
    `packed-refs` and the mtimes of the folders of loose experiment refs (one per
    baseline). None when the refs are not files (reftable): then read them every time."""
    if not (common_dir / "refs").is_dir():
        return None
    parts: list[Any] = []
    for path in (common_dir / "packed-refs", common_dir / "refs" / "tether" / "exps"):
        try:
            stat = path.stat()
        except OSError:
            parts.append(None)
            continue
        parts.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
    with contextlib.suppress(OSError), os.scandir(common_dir / "refs" / "tether" / "exps") as it:
        parts += sorted((entry.name, entry.stat().st_mtime_ns) for entry in it)
    return tuple(parts)


class Catalog:
    """The experiments of the repository at `root`: the index kept in line with the refs,
    read in SQL for unfiltered tables (`sqlpage.py`) and held in memory for filters.

    Every `ttl` seconds at most, a look at the refs' files (`refs_fingerprint`, a few
    stat calls) decides whether to read the refs again, in a background thread: a server
    left open on 100,000 experiments costs nothing while nobody records. Each change of
    the refs is a new generation; what was computed for an older one is dropped.
    """

    def __init__(self, root: Path, *, ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.git = Git(root)
        self.path = index_path(root)
        self.ttl = ttl
        self.generation = 0  # 0: the index was never read
        self._clock = clock
        self._refs: dict[str, str] | None = None
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._summary_lock = threading.Lock()
        self._refreshing = False
        common = self.git.out("rev-parse", "--git-common-dir")
        self._common_dir = (root / common).resolve()
        self._fingerprint: tuple[Any, ...] | None = None
        self._labels: tuple[int, dict[str, list[str]]] | None = None
        self._subjects: dict[str, str] = {}  # a commit's subject never changes
        self._table = LRU(QUERIES_KEPT)  # (generation, what) → unfiltered SQL answers
        self.answered = threading.Event()  # set once a table page was sent
        from tether.web.summary import Summaries

        self._summaries = Summaries(root)  # the unfiltered summary, folded and saved

    def current(self) -> int:
        """The generation of an index in line with the refs (read now the first time;
        then re-read in the background when the refs' files changed)."""
        if self.generation == 0:
            with self._lock:
                if self.generation == 0:
                    self._refresh()
            return self.generation
        if self._clock() - self._read_at >= self.ttl and not self._refreshing:
            self._read_at = self._clock()
            fingerprint = refs_fingerprint(self._common_dir)
            if fingerprint is None or fingerprint != self._fingerprint:
                self._refreshing = True
                threading.Thread(target=self._refresh_quietly, daemon=True).start()
        return self.generation

    def snapshot(self) -> Snapshot:
        """The experiments of the current generation, in memory (read when needed)."""
        generation = self.current()
        current = self._snapshot
        if current is not None and current.generation == generation:
            return current
        with self._lock:
            if self._snapshot is None or self._snapshot.generation != self.generation:
                self._load()
            assert self._snapshot is not None
            return self._snapshot

    def table(self, column: str, descending: bool, offset: int, limit: int
              ) -> tuple[int, list[IndexedExperiment], dict[str, Any]]:
        """(total, page, columns/best/baselines) of every experiment, in SQL."""
        from tether.web import sqlpage

        generation = self.current()
        connection = sqlpage.connect(self.path)
        try:
            total, rows = sqlpage.page(connection, column, descending, offset, limit)
            summary: dict[str, Any] | None = self._table.get((generation, "summary"))
            if summary is None:
                with self._summary_lock:  # one computes it, the others wait for it
                    summary = self._table.get((generation, "summary"))
                    if summary is None:
                        from tether.web.summary import render

                        state = self._summaries.state_for(self._refs or {}, connection)
                        summary = render(state, self.labels(),
                                         self.subjects(list(state["baselines"])))
                        self._table.put((generation, "summary"), summary)
        finally:
            connection.close()
        return total, rows, summary

    def labels(self) -> dict[str, list[str]]:
        """Baseline sha → branch and tag names (read once per generation)."""
        held = self._labels
        if held is None or held[0] != self.generation:
            held = self._labels = (self.generation, baseline_labels(self.git))
        return held[1]

    def subjects(self, shas: list[str]) -> dict[str, str]:
        """Commit sha → its subject line (one git call for those not known yet)."""
        missing = sorted({sha for sha in shas if sha and sha not in self._subjects})
        if missing:
            proc = self.git.run("log", "--no-walk=unsorted", "--stdin", "--format=%H %s",
                                input="".join(f"{sha}\n" for sha in missing), check=False)
            for line in proc.stdout.decode(errors="replace").splitlines():
                sha, _, subject = line.partition(" ")
                self._subjects[sha] = subject
        return self._subjects

    def warm(self, patience: float = WARM_PATIENCE) -> None:
        """Read the index and the table's first answer now (in a thread at startup), then
        the experiments into memory for filters, once the first table was answered (or
        after `patience` seconds): reading 100,000 experiments into Python would slow that
        answer down. Errors are left for a request to report."""
        with contextlib.suppress(Exception):
            self.table("created", True, 0, 1)
            self.answered.wait(patience)
            self.snapshot()

    def refresh_now(self) -> Snapshot:
        """Read the refs again now (after a write, or in tests)."""
        with self._lock:
            self._refresh()
        return self.snapshot()

    def _refresh_quietly(self) -> None:
        try:
            with self._lock:
                self._refresh()
                if self._snapshot is not None:  # filters were used: keep them fast
                    self._load()
        except Exception:  # the next request tries again; the old view stays meanwhile
            pass
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        self._read_at = self._clock()
        self._fingerprint = refs_fingerprint(self._common_dir)  # before: a change after counts
        index = refresh(self.git)
        try:
            if index.refs != self._refs:
                self._refs = dict(index.refs)
                self.generation += 1
        finally:
            index.close()

    def _load(self) -> None:
        index = refresh(self.git)
        try:
            if index.refs != self._refs:
                self._refs = dict(index.refs)
                self.generation += 1
            self._snapshot = Snapshot(self, index.experiments(None), self.generation)
        finally:
            index.close()
