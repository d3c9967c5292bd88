"""bench/autoscale.py, small: KEDA's loop on local workers loses and duplicates nothing,
and leaves no worker behind. No timing is asserted (the figures are the bench's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "autoscale.py"


def test_desired_workers_follow_waiting_plus_running() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        from autoscale import desired_workers
    finally:
        sys.path.remove(str(BENCH.parent))
    assert desired_workers(0, 0, 2, 4) == 0
    assert desired_workers(1, 0, 2, 4) == 1
    assert desired_workers(3, 2, 2, 4) == 3  # running entries keep their workers
    assert desired_workers(100, 0, 2, 4) == 4


@pytest.mark.parametrize("backend", ["embedded", "celery"])
def test_a_burst_is_run_exactly_once_and_the_pool_returns_to_zero(
    backend: str, tmp_path: Path
) -> None:
    if backend == "celery" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--experiments", "12", "--max-workers", "3",
         "--target", "2", "--cooldown", "1", "--tail", "1", "--poll", "0.3", "--json",
         "--backend", backend],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == backend and result["exactly_once"] and result["states"] == ["done"]
    assert (result["entries"], result["recorded"], result["distinct_run_ids"]) == (12, 12, 12)
    assert result["workers_left"] == 0 and result["peak_workers"] >= 1
    assert result["runs_started"] >= 12  # a worker scaled down mid-run requeues, not loses
