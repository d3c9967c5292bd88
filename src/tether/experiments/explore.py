"""Read recorded experiments back: records in one git call, and the query behind `tether show`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import UsageError
from tether.experiments.reference import (
    BaselineParams,
    baseline_run,
    differing_from,
    params_file,
    read_baseline_params,
)
from tether.gitstore.experiments import read_record_blobs
from tether.gitstore.git import Git, find_root
from tether.record.record import RunRecord, load_record
from tether.record.validate import Skipped
from tether.status import SUCCESS

if TYPE_CHECKING:
    from tether.experiments.filtering import Predicate
    from tether.experiments.index import IndexedExperiment, Progress


def read_records(git: Git, commits: list[str]) -> list[RunRecord | None]:
    """The records of many experiment commits in one `git cat-file --batch`.

    A record that is missing or fails validation (`load_record`) is None.
    """
    return [load_record(blob)[0] for blob in read_record_blobs(git, commits)]


def read_checked_records(
    git: Git, commits: list[str]
) -> list[tuple[RunRecord | None, str | None]]:
    """(record, None) or (None, what is wrong) for many experiment commits, in one git call."""
    return [load_record(blob) for blob in read_record_blobs(git, commits)]


# -- the query behind `tether show` ---------------------------------------------


class BaselineGroup:
    """The shown experiments recorded against one baseline commit.

    Plain classes here: `tether show` must start fast, and importing dataclasses
    (with inspect) would cost it more than reading a thousand experiments.
    """

    def __init__(
        self, baseline: str, labels: list[str], experiments: list[IndexedExperiment],
        reference: IndexedExperiment | None = None,
    ) -> None:
        self.baseline = baseline
        self.labels = labels  # branches and tags pointing at the baseline
        # The baseline commit's own run (`reference.baseline_run`), first in `rows`,
        # shown even when --filter or --last leave it out of `experiments`.
        self.reference = reference
        self.experiments = experiments
        self.params: BaselineParams | None = None  # the baseline's params, once known

    @property
    def rows(self) -> list[IndexedExperiment]:
        """The baseline row first (when there is one), then the other experiments."""
        if self.reference is None:
            return self.experiments
        return [self.reference, *(e for e in self.experiments if e is not self.reference)]


class ShowResult:
    """What `tether show` displays; columns and best values are computed on first use."""

    def __init__(
        self,
        experiments: list[IndexedExperiment],
        groups: list[BaselineGroup],
        all_params: bool = False,
        total: int = 0,
        skipped: list[Skipped] | None = None,
        notes: list[str] | None = None,
        git: Git | None = None,
    ) -> None:
        self.experiments = experiments  # in the order asked for, across baselines
        self.groups = groups  # the same, grouped by baseline (in order of appearance)
        self.all_params = all_params
        self.total = total  # experiments in scope before --filter and --last
        self.skipped = skipped or []  # refs in scope left out: invalid name or record
        self.notes = notes or []  # local state repaired on the way (a warning each)
        # When none is in scope: how many are recorded elsewhere, and the newest's baseline.
        self.elsewhere = 0
        self.latest_baseline: str | None = None
        self._git = git  # to read baselines' params files when no baseline row has them

    @cached_property
    def param_keys(self) -> list[str]:
        """The params columns: those that differ across the shown experiments or from
        their baseline's params files, or all."""
        experiments = self.experiments
        if self.all_params:
            return sorted({k for exp in experiments for k in exp.params})
        keys = set(varying_params(experiments))
        for group in self._with_baseline_params():
            assert group.params is not None
            keys |= differing_from(group.rows, group.params)
        return sorted(keys)

    def _with_baseline_params(self) -> list[BaselineGroup]:
        """The groups, each with its baseline's params: its baseline row's, else read
        from the baseline commits (all in one git call)."""
        wanted: dict[str, set[str]] = {}
        for group in self.groups:
            if group.reference is not None:
                params = group.reference.params
                group.params = (params, frozenset(params_file(k) for k in params))
            elif group.params is None:
                wanted[group.baseline] = {params_file(k) for e in group.rows for k in e.params}
        if wanted and self._git is not None:
            read = read_baseline_params(self._git, wanted)
            for group in self.groups:
                group.params = group.params or read.get(group.baseline)
        return [group for group in self.groups if group.params is not None]

    @cached_property
    def metric_keys(self) -> list[str]:
        return sorted({k for exp in self.experiments for k in exp.metrics})

    @cached_property
    def _judged(self) -> tuple[dict[str, str], dict[str, float]]:
        return best_values(self.experiments, self.metric_keys)

    @property
    def directions(self) -> dict[str, str]:
        """Metric → min|max, for shown metrics with a declared rule."""
        return self._judged[0]

    @property
    def best(self) -> dict[str, float]:
        """Metric → the best shown value, for metrics with a declared direction."""
        return self._judged[1]


_MISSING = object()


def column_value(exp: IndexedExperiment, column: str) -> Any:
    """The value of a filter/sort column for `exp`, or a sentinel when it has none."""
    if column.startswith("params."):
        return exp.params.get(column[7:], _MISSING)
    if column.startswith("metrics."):
        return exp.metrics.get(column[8:], _MISSING)
    if column == "created":
        return exp.created_at
    return getattr(exp, column, _MISSING)


def _check_column(column: str) -> None:
    from tether.experiments.filtering import PLAIN_COLUMNS, PREFIXED_COLUMNS

    if column in PLAIN_COLUMNS or any(
        column.startswith(p) and len(column) > len(p) for p in PREFIXED_COLUMNS
    ):
        return
    raise UsageError(
        f"cannot sort by {column!r}",
        hint=f"use one of {', '.join(PLAIN_COLUMNS)}, params.<key> or metrics.<key>",
    )


def _sort_key(column: str) -> Callable[[IndexedExperiment], tuple[int, Any]]:
    def key(exp: IndexedExperiment) -> tuple[int, Any]:
        value = column_value(exp, column)
        if value is _MISSING or value is None:
            return (2, 0)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, value)
        return (1, json.dumps(value) if not isinstance(value, str) else value)

    return key


def sort_experiments(
    experiments: list[IndexedExperiment], column: str, *, descending: bool = False
) -> list[IndexedExperiment]:
    """Sorted by `column`; experiments without a value come last either way."""
    _check_column(column)
    key = _sort_key(column)
    present = [e for e in experiments if key(e)[0] != 2]
    absent = [e for e in experiments if key(e)[0] == 2]
    return sorted(present, key=key, reverse=descending) + absent


def varying_params(experiments: Sequence[IndexedExperiment]) -> list[str]:
    """Params keys whose values differ (or are missing) across `experiments`."""
    keys = sorted({k for exp in experiments for k in exp.params})
    if len(experiments) < 2:
        return keys
    varying = []
    for key in keys:
        first = experiments[0].params.get(key, _MISSING)
        if any(exp.params.get(key, _MISSING) != first for exp in experiments):
            varying.append(key)
    return varying


def best_values(
    experiments: Sequence[IndexedExperiment], metric_keys: Sequence[str]
) -> tuple[dict[str, str], dict[str, float]]:
    """Declared directions (newest rule wins) and the best value of each such metric.

    Only successful experiments compete: a failed or interrupted run's metrics are
    its own (those of the stages that succeeded) but are no result to beat.
    """
    directions: dict[str, str] = {}
    for exp in sorted(experiments, key=lambda e: e.created_at, reverse=True):
        for metric, rule in exp.rules.items():
            if metric not in directions and isinstance(rule, dict) and rule.get("direction") in (
                "min", "max"
            ):
                directions[metric] = rule["direction"]
    best: dict[str, float] = {}
    for metric in metric_keys:
        direction = directions.get(metric)
        values = [v for exp in experiments
                  if exp.status == SUCCESS
                  and isinstance(v := exp.metrics.get(metric), int | float)
                  and not isinstance(v, bool)]
        if direction and values:
            best[metric] = max(values) if direction == "max" else min(values)
    return {m: d for m, d in directions.items() if m in metric_keys}, best


def matching(
    experiments: Sequence[IndexedExperiment], predicate: Predicate
) -> list[IndexedExperiment]:
    """The experiments a compiled `--filter` expression accepts, in their order."""
    from tether.experiments.filtering import Row

    return [
        exp for exp in experiments
        if predicate(Row(
            {"name": exp.name, "status": exp.status, "baseline": exp.baseline,
             "created": exp.created_at, "duration": exp.duration, "message": exp.message},
            exp.params, exp.metrics,
        ))
    ]


def baseline_labels(git: Git) -> dict[str, list[str]]:
    """Commit sha → branch and tag names pointing at it (annotated tags peeled), one git call."""
    labels: dict[str, list[str]] = {}
    fmt = "%(objectname) %(*objectname) %(refname:short)"
    for line in git.run("for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags").stdout \
            .decode(errors="replace").splitlines():
        sha, peeled, name = line.split(" ", 2)
        labels.setdefault(peeled or sha, []).append(name)
    return labels


def show_experiments(
    cwd: Path,
    *,
    baseline: str = "HEAD",
    all_baselines: bool = False,
    filter_expression: str | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    last: int | None = None,
    all_params: bool = False,
    progress: Progress | None = None,
    labels: bool = True,
) -> ShowResult:
    """The experiments `tether show` displays, grouped by baseline, with their columns.

    With `labels`, each group names the branches and tags at its baseline (one git call).
    """
    from tether.experiments.index import refresh

    predicate = None
    if filter_expression is not None:
        from tether.experiments.filtering import parse_filter

        predicate = parse_filter(filter_expression)
    if sort_by is not None:
        _check_column(sort_by)
    if last is not None and last < 1:
        raise UsageError(f"--last must be a positive number, not {last}")
    git = Git(find_root(cwd))
    baseline_sha = None
    if not all_baselines:
        baseline_sha = git.head_commit() if baseline == "HEAD" else git.resolve(baseline)
        if baseline_sha is None:
            raise UsageError(f"--baseline {baseline!r} names no commit",
                             hint="give a branch, tag or commit sha; -A shows every baseline")
    index = refresh(git, progress=progress)
    try:
        experiments = index.experiments(baseline_sha)
        skipped = index.skipped(baseline_sha)
        notes = index.notes
        others = index.experiments(None) if not experiments and baseline_sha else []
    finally:
        index.close()
    total = len(experiments)
    in_scope = experiments
    if predicate is not None:
        experiments = matching(experiments, predicate)
    if last is not None:
        experiments = experiments[-last:]  # oldest first, so the newest N
    if sort_by is not None:
        experiments = sort_experiments(experiments, sort_by, descending=descending)
    elif descending:
        experiments = experiments[::-1]
    groups: dict[str, list[IndexedExperiment]] = {}
    for exp in experiments:
        groups.setdefault(exp.baseline, []).append(exp)
    names = baseline_labels(git) if groups and labels else {}
    references = _baseline_runs(in_scope, groups)
    result = ShowResult(
        experiments=experiments,
        groups=[BaselineGroup(sha, names.get(sha, []), exps, references.get(sha))
                for sha, exps in groups.items()],
        all_params=all_params, total=total, skipped=skipped, notes=notes, git=git,
    )
    if others:
        result.elsewhere = len(others)
        result.latest_baseline = max(others, key=lambda exp: exp.created_at).baseline
    return result


def _baseline_runs(
    in_scope: list[IndexedExperiment], shown: dict[str, list[IndexedExperiment]]
) -> dict[str, IndexedExperiment]:
    """Baseline sha → its own run (`baseline_run`), for the baselines shown."""
    by_baseline: dict[str, list[IndexedExperiment]] = {}
    for exp in in_scope:
        if exp.as_committed and exp.baseline in shown:
            by_baseline.setdefault(exp.baseline, []).append(exp)
    return {sha: run for sha, exps in by_baseline.items()
            if (run := baseline_run(exps)) is not None}
