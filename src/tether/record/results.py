"""Gather what a run produced: final metrics, step metrics and logs.

Only stages that contribute give results: a stage that succeeded in this run (ran,
or was restored from the run-cache), or one skipped as unchanged, whose files are
still the workspace's current results (as in DVC). A failed stage, or one that did
not run because an earlier one failed, contributes no metrics and no plot files;
what it logged with `tether.log` while it ran is kept (it is this run's own).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tether.errors import SpecError
from tether.record.metrics import flatten, read_metrics_file, read_step_file
from tether.record.record import StageRecord, embed_log
from tether.spec import Stage
from tether.status import CONTRIBUTING, SUCCESS


class StageResults:
    """The final metrics (per declared file) and plot series of one stage's files."""

    def __init__(self, metrics: dict[str, dict[str, Any]],
                 plots: dict[str, list[dict[str, Any]]]) -> None:
        self.metrics = metrics
        self.plots = plots


def read_stage_results(stage: Stage, workspace: Path) -> StageResults:
    """Read the stage's metric and plot files; SpecError names an invalid one."""
    metrics = {path: read_metrics_file(workspace / path) for path in stage.metrics}
    plots: dict[str, list[dict[str, Any]]] = {}
    for path in stage.plots:
        series = read_step_file(workspace / path)
        if series:
            plots[path] = series
    return StageResults(metrics, plots)


def collect_metrics(
    stages: list[StageRecord], results: dict[str, StageResults], run_dir: Path
) -> dict[str, Any]:
    """Final metrics of the contributing stages: their files, then `tether.summary` values.

    A name that several files hold (`score` in each `metrics-${key}.json` of a foreach)
    is kept from each, as `FILE:NAME` (the spelling of a param from another file), so
    that no file's value silently replaces another's."""
    files = [(path, values) for stage in stages
             if stage.status in CONTRIBUTING and stage.name in results
             for path, values in results[stage.name].metrics.items()]
    holders = Counter(name for _, values in files for name in values)
    metrics: dict[str, Any] = {}
    for path, values in files:
        for name, value in values.items():
            metrics[name if holders[name] == 1 else f"{path}:{name}"] = value
    for stage in stages:
        if stage.status != SUCCESS:
            continue
        summary = run_dir / "summary" / f"{stage.name}.json"
        if summary.exists():
            try:
                metrics.update(flatten(json.loads(summary.read_text())))
            except ValueError:
                continue
    return metrics


def collect_steps(
    stages: list[StageRecord], results: dict[str, StageResults], run_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    """Step series by source: `tether.log` per stage that ran, plot files of contributors."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for stage in stages:
        logged = run_dir / "steps" / f"{stage.name}.jsonl"
        if logged.exists():
            try:
                series = read_step_file(logged)
            except SpecError:
                series = []  # written by the user's code, not worth losing the run over
            if series:
                steps[stage.name] = series
        if stage.status in CONTRIBUTING and stage.name in results:
            steps.update(results[stage.name].plots)
    return steps


def record_logs(stages: list[StageRecord], run_dir: Path) -> dict[str, Path]:
    """Embed each stage's log in its record; return tree path -> log file to store."""
    files: dict[str, Path] = {}
    for stage in stages:
        log_path = run_dir / "logs" / f"{stage.name}.log"
        if not log_path.exists():
            continue
        stage.log, tree_path = embed_log(log_path, stage.name)
        if tree_path:
            files[tree_path] = log_path
    return files
