"""The series `tether metrics` exports: sample name -> its label names.

Read from a real `tether metrics --once` over a project with queued, running and
recorded entries when the command exists; until then, from issue 16's list (which
the real output must match: `test_the_real_exporter_matches_the_list`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import git, write

ISSUE_16: dict[str, frozenset[str]] = {
    "tether_queue_depth": frozenset({"queue"}),
    "tether_queue_running": frozenset({"queue"}),
    "tether_workers": frozenset({"queue"}),
    "tether_runs_total": frozenset({"status"}),
    "tether_stage_duration_seconds_bucket": frozenset({"stage", "le"}),
    "tether_stage_duration_seconds_sum": frozenset({"stage"}),
    "tether_stage_duration_seconds_count": frozenset({"stage"}),
    "tether_stage_timeouts_total": frozenset({"kind"}),
    "tether_retries_total": frozenset(),
    "tether_lost_workers_total": frozenset(),
    "tether_oldest_waiting_seconds": frozenset({"queue"}),
    "tether_notifications_total": frozenset({"outcome"}),
}

SPEC = """\
stages:
  train:
    cmd: python train.py
    metrics: [m.json]
"""


def has_metrics_command() -> bool:
    from tether.cli.main import COMMANDS

    return "metrics" in COMMANDS


def _tether(root: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=root, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def real_exposition(root: Path) -> str:
    """`tether metrics --once` of a project with a recorded run and a waiting entry."""
    write(root / "tether.yaml", SPEC)
    write(root / "train.py", "import json\njson.dump({'acc': 1}, open('m.json', 'w'))\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    _tether(root, "run", "--queue", "-n", "first")
    _tether(root, "worker", "--exit-when-idle")
    _tether(root, "run", "--queue", "-n", "waiting")
    return _tether(root, "metrics", "--once")


def series(exposition: str) -> dict[str, frozenset[str]]:
    """Sample name -> label names, from Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in found.items()}
