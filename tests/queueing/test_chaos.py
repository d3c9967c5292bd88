"""Chaos: two workers, one SIGKILLed at a random moment; every experiment recorded once."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import exp_refs, record_of
from queueing.conftest import queue_status, start_worker, tether

ROUNDS = 3
EXPERIMENTS = 20


@pytest.mark.timeout(600)
def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    project: Path, workers: list
) -> None:
    rng = random.Random(int(os.environ.get("TETHER_CHAOS_SEED", time.time_ns() % 10**6)))
    env = {"TRAIN_SLEEP": "0.3"}
    for round_number in range(1, ROUNDS + 1):
        prefix = f"round{round_number}"
        tether(project, "run", "--queue", "--repeat", str(EXPERIMENTS), "-n", prefix)
        # A short lease (4 s) makes the dead worker's entries come back quickly, yet is
        # long enough that a survivor slowed by a loaded 2-core machine keeps its own.
        victim = start_worker(project, "-j", "2", "--lease", "4", "--exit-when-idle", env=env)
        survivor = start_worker(project, "-j", "2", "--lease", "4", "--exit-when-idle", env=env)
        workers += [victim, survivor]
        deadline = time.monotonic() + 60
        while not any(r["state"] == "running" for r in queue_status(project)):
            assert time.monotonic() < deadline, "nothing started"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        _, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, err

        rows = [r for r in queue_status(project) if str(r["name"]).startswith(prefix + "-")]
        assert len(rows) == EXPERIMENTS
        assert {r["state"] for r in rows} == {"done"}, [
            (r["name"], r["state"], r["attempt"], r["error"]) for r in rows if r["state"] != "done"]
        refs = [ref for ref in exp_refs(project)
                if ref.startswith("refs/tether/exps/") and f"/{prefix}-" in ref]
        names = sorted(ref.rsplit("/", 1)[1] for ref in refs)
        assert names == sorted(f"{prefix}-{i}" for i in range(1, EXPERIMENTS + 1))
        by_name = {str(r["name"]): r for r in rows}
        for ref in refs:
            record = record_of(project, ref)
            assert record["id"] == by_name[str(record["name"])]["run_id"]
            assert record["status"] == "success"
