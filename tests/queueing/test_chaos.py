"""Chaos: two workers, one SIGKILLed at a random moment; every experiment recorded once.

On failure, the seed, the entries, the store's rows and every worker's log are
written to a report whose path the assertion message names (queueing.chaos).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from helpers import exp_refs, record_of
from queueing.chaos import ChaosReport, attempt_logs, chaos_seed, sqlite_rows
from queueing.conftest import queue_status, start_worker, tether

ROUNDS = 3
EXPERIMENTS = 20


@pytest.mark.timeout(600)
def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    project: Path, workers: list, tmp_path: Path
) -> None:
    seed = chaos_seed()
    rng = random.Random(seed)
    report = ChaosReport(tmp_path / "chaos-report.txt", seed)
    worker_logs: dict[str, str] = {}

    def collect() -> dict[str, str]:
        for index, proc in enumerate(workers):
            if f"worker {index}" not in worker_logs:
                if proc.poll() is None:
                    proc.kill()
                _, err = proc.communicate(timeout=30)
                worker_logs[f"worker {index}"] = err or ""
        status = tether(project, "queue", "status", "--json", check=False)
        return {
            "entries (tether queue status --json)": status.stdout + status.stderr,
            "state store (.tether/queue.db)": sqlite_rows(project / ".tether" / "queue.db"),
            "experiment refs": "\n".join(sorted(exp_refs(project))),
            **{f"{name} log": text for name, text in worker_logs.items()},
            "attempt logs": attempt_logs(project / ".tether" / "queue" / "logs"),
        }

    env = {"TRAIN_SLEEP": "0.3"}
    with report.on_failure(collect):
        for round_number in range(1, ROUNDS + 1):
            prefix = f"round{round_number}"
            tether(project, "run", "--queue", "--repeat", str(EXPERIMENTS), "-n", prefix)
            # A short lease (4 s) makes the dead worker's entries come back quickly, yet is
            # long enough that a survivor slowed by a loaded 2-core machine keeps its own.
            victim = start_worker(project, "-j", "2", "--lease", "4", "--exit-when-idle",
                                  env=env)
            survivor = start_worker(project, "-j", "2", "--lease", "4", "--exit-when-idle",
                                    env=env)
            workers += [victim, survivor]
            report.note(f"{prefix}: queued {EXPERIMENTS}; workers {len(workers) - 2} (victim) "
                        f"and {len(workers) - 1} started")
            deadline = time.monotonic() + 60
            while not any(r["state"] == "running" for r in queue_status(project)):
                assert time.monotonic() < deadline, "nothing started"
                time.sleep(0.05)
            pause = rng.uniform(0.0, 2.0)
            time.sleep(pause)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            report.note(f"{prefix}: victim SIGKILLed {pause:.2f}s after the first run started")
            worker_logs[f"worker {len(workers) - 2}"] = victim.communicate(timeout=30)[1]
            _, err = survivor.communicate(timeout=300)
            worker_logs[f"worker {len(workers) - 1}"] = err
            assert survivor.returncode == 0, err

            rows = [r for r in queue_status(project)
                    if str(r["name"]).startswith(prefix + "-")]
            assert len(rows) == EXPERIMENTS
            assert {r["state"] for r in rows} == {"done"}, [
                (r["name"], r["state"], r["attempt"], r["error"]) for r in rows
                if r["state"] != "done"]
            refs = [ref for ref in exp_refs(project)
                    if ref.startswith("refs/tether/exps/") and f"/{prefix}-" in ref]
            names = sorted(ref.rsplit("/", 1)[1] for ref in refs)
            assert names == sorted(f"{prefix}-{i}" for i in range(1, EXPERIMENTS + 1))
            by_name = {str(r["name"]): r for r in rows}
            for ref in refs:
                record = record_of(project, ref)
                assert record["id"] == by_name[str(record["name"])]["run_id"]
                assert record["status"] == "success"
