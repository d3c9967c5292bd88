"""Gather what a run produced: final metrics, step metrics and logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether.plan import Plan
from tether.record.metrics import flatten, read_metrics_file, read_step_file
from tether.record.record import StageRecord, embed_log
from tether.spec import Pipeline


def collect_metrics(
    pipeline: Pipeline, plan: Plan, workspace: Path, run_dir: Path
) -> dict[str, Any]:
    """Final metrics: declared metric files, then values set with `tether.summary`."""
    metrics: dict[str, Any] = {}
    for decision in plan.decisions:
        for path in pipeline.stages[decision.name].metrics:
            metrics.update(read_metrics_file(workspace / path))
    summaries = run_dir / "summary"
    for decision in plan.decisions:
        summary = summaries / f"{decision.name}.json"
        if summary.exists():
            try:
                metrics.update(flatten(json.loads(summary.read_text())))
            except ValueError:
                continue
    return metrics


def collect_steps(
    pipeline: Pipeline, plan: Plan, workspace: Path, run_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    """Step-metric series by source: `tether.log` per stage, and declared plot files."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for decision in plan.decisions:
        logged = run_dir / "steps" / f"{decision.name}.jsonl"
        if logged.exists():
            series = read_step_file(logged)
            if series:
                steps[decision.name] = series
        for path in pipeline.stages[decision.name].plots:
            series = read_step_file(workspace / path)
            if series:
                steps[path] = series
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
