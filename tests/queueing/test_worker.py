"""End to end on the embedded backend: `tether run --queue`, real `tether worker` processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from conftest import git, write
from helpers import exp_refs, record_of, repo_state
from queueing.conftest import queue_status, start_worker, tether


def _records(root: Path) -> dict[str, dict[str, object]]:
    return {ref.rsplit("/", 1)[1]: record_of(root, ref) for ref in exp_refs(root)
            if ref.startswith("refs/tether/exps/")}


def _wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def _first_log(root: Path) -> str:
    return tether(root, "queue", "logs", str(queue_status(root)[0]["id"])).stdout


def test_sweep_is_queued_from_one_snapshot_and_run(project: Path) -> None:
    write(project / "params.yaml", "lr: 0.5\nepochs: 1\n")  # uncommitted: in the snapshot
    before = repo_state(project)
    out = tether(project, "run", "--queue", "-S", "lr=0.1,0.2", "-S", "epochs=[1, 2],3").stdout
    assert len(out.splitlines()) == 4
    assert repo_state(project) == before
    snapshots = [r for r in exp_refs(project) if r.startswith("refs/tether/queue/")]
    assert len(snapshots) == 1
    tether(project, "worker", "-j", "2", "--exit-when-idle")
    rows = queue_status(project)
    assert [row["state"] for row in rows] == ["done"] * 4
    records = _records(project)
    assert sorted(str(row["name"]) for row in rows) == sorted(records)
    params = sorted((r["params"]["params.yaml"]["lr"], str(r["params"]["params.yaml"]["epochs"]))
                    for r in records.values())  # type: ignore[index]
    assert params == [(0.1, "3"), (0.1, "[1, 2]"), (0.2, "3"), (0.2, "[1, 2]")]
    head = git(project, "rev-parse", "HEAD")
    assert all(r["baseline"] == head for r in records.values())
    assert repo_state(project) == before


def test_repeat_gives_distinct_seeds(project: Path) -> None:
    tether(project, "run", "--queue", "--repeat", "3", "-n", "seeded")
    tether(project, "worker", "--exit-when-idle")
    records = _records(project)
    assert sorted(records) == ["seeded-1", "seeded-2", "seeded-3"]
    seeds = {r["environment"]["env_vars"]["TETHER_SEED"] for r in records.values()}  # type: ignore[index]
    assert seeds == {"0", "1", "2"}


def test_retryable_failure_is_retried_and_recorded_once(project: Path, tmp_path: Path) -> None:
    env = {"TRAIN_FAIL_TIMES": f"{tmp_path / 'count'}:1"}
    tether(project, "run", "--queue", "-n", "flaky")
    tether(project, "worker", "--exit-when-idle", "--backoff", "0.05", env=env)
    [row] = queue_status(project)
    assert (row["state"], row["attempt"]) == ("done", 2)
    assert list(_records(project)) == ["flaky"]
    assert _records(project)["flaky"]["status"] == "success"
    logs = tether(project, "queue", "logs", str(row["id"])).stdout
    assert "attempt 1" in logs and "attempt 2" in logs and logs.count("training") == 2


def test_last_attempt_fails_and_every_log_is_kept(project: Path, tmp_path: Path) -> None:
    env = {"TRAIN_FAIL_TIMES": f"{tmp_path / 'count'}:9"}
    tether(project, "run", "--queue", "-n", "doomed")
    proc = tether(project, "worker", "--exit-when-idle", "--backoff", "0.05", env=env,
                  check=False)
    assert proc.returncode == 1, proc.stderr  # an entry it ran failed
    assert "1 entry failed" in proc.stderr
    [row] = queue_status(project)
    assert (row["state"], row["attempt"], row["status"]) == ("failed", 3, "failed")
    assert _records(project)["doomed"]["status"] == "failed"
    logs = tether(project, "queue", "logs", str(row["id"])).stdout
    assert logs.count("training") == 3
    retried = tether(project, "queue", "retry", "--failed").stderr
    assert "doomed-r2" in retried


def test_exit_code_not_in_retry_on_fails_at_once(project: Path, tmp_path: Path) -> None:
    env = {"TRAIN_FAIL_TIMES": f"{tmp_path / 'count'}:1", "TRAIN_FAIL_CODE": "4"}
    tether(project, "run", "--queue")
    tether(project, "worker", "--exit-when-idle", "--ok-on-failed-runs", "--backoff", "0.05",
           env=env)
    [row] = queue_status(project)
    assert (row["state"], row["attempt"]) == ("failed", 1)


def test_kill_stops_a_running_entry_and_records_it(project: Path, workers: list) -> None:
    tether(project, "run", "--queue", "-n", "long")
    workers.append(start_worker(project, "--exit-when-idle", env={"TRAIN_SLEEP": "120"}))
    _wait_for(lambda: "training" in _first_log(project))
    entry_id = str(queue_status(project)[0]["id"])
    tether(project, "queue", "kill", entry_id)
    workers[0].communicate(timeout=60)
    [row] = queue_status(project)
    assert row["state"] == "cancelled" and row["status"] == "interrupted"
    assert _records(project)["long"]["status"] == "interrupted"


def test_already_recorded_run_is_not_run_again(project: Path) -> None:
    tether(project, "run", "--queue", "-n", "once")
    tether(project, "worker", "--exit-when-idle")
    [row] = queue_status(project)
    # A worker that recorded the run and died before reporting it: back to queued.
    import sqlite3

    db = sqlite3.connect(project / ".tether" / "queue.db")
    db.execute("UPDATE entries SET state = 'queued'")
    db.commit()
    db.close()
    tether(project, "worker", "--exit-when-idle")
    [row] = queue_status(project)
    assert (row["state"], row["attempt"]) == ("done", 2)
    assert list(_records(project)) == ["once"]
    second = tether(project, "queue", "logs", str(row["id"]), "--attempt", "2").stdout
    assert "training" not in second


def test_sigterm_requeue_puts_the_run_back_unrecorded(project: Path, workers: list) -> None:
    tether(project, "run", "--queue", "-n", "drained")
    workers.append(start_worker(project, "--on-term", "requeue", env={"TRAIN_SLEEP": "120"}))
    _wait_for(lambda: "training" in _first_log(project))
    workers[0].send_signal(signal.SIGTERM)
    workers[0].communicate(timeout=60)
    [row] = queue_status(project)
    assert row["state"] == "queued"
    assert _records(project) == {}
    tether(project, "worker", "--exit-when-idle")
    assert list(_records(project)) == ["drained"]


def test_sigterm_finish_lets_the_current_run_end(project: Path, workers: list) -> None:
    tether(project, "run", "--queue", "-n", "first")
    tether(project, "run", "--queue", "-n", "second")
    workers.append(start_worker(project, env={"TRAIN_SLEEP": "1"}))
    _wait_for(lambda: any(r["state"] == "running" for r in queue_status(project)))
    workers[0].send_signal(signal.SIGTERM)
    workers[0].communicate(timeout=60)
    states = sorted(str(r["state"]) for r in queue_status(project))
    assert states == ["done", "queued"]


def test_status_shows_worker_attempt_and_silence(project: Path, workers: list) -> None:
    tether(project, "run", "--queue", "-n", "watched", "--priority", "3")
    workers.append(start_worker(project, "--exit-when-idle", env={"TRAIN_SLEEP": "3"}))
    _wait_for(lambda: queue_status(project)[0]["state"] == "running")
    row = queue_status(project)[0]
    assert row["host"] and row["attempt"] == 1 and row["since_output"] is not None
    text = tether(project, "queue", "status").stdout
    assert "watched" in text and "running" in text
    workers[0].communicate(timeout=60)
    tether(project, "queue", "remove", "--done")
    assert queue_status(project) == []


DSL_SPEC = """\
from tether.dsl import Pipeline, stage

pipeline = Pipeline(metrics={"acc": {"direction": "max"}})
pipeline.add(stage("train", cmd="python train.py", params=["lr", "epochs"],
                   metrics=["metrics.json"]))
"""


def test_a_python_spec_project_runs_queued(project: Path) -> None:
    """A project whose spec is `tether.py`: the worker's child runs in the entry's worktree,
    where that file must not hide the tether package (it did: every attempt broke its pipe)."""
    (project / "tether.yaml").unlink()
    write(project / "tether.py", DSL_SPEC)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the pipeline in Python")
    tether(project, "run", "--queue", "-n", "dsl", "-S", "lr=0.2,0.3")
    tether(project, "worker", "--exit-when-idle", "-j", "2", timeout=180)
    records = _records(project)
    assert sorted(records) == ["dsl-1", "dsl-2"], records
    assert sorted(r["metrics"]["acc"] for r in records.values()) == [0.2, 0.3]  # type: ignore[index]
    assert all(r["status"] == "success" for r in records.values())
    assert {e["state"] for e in queue_status(project)} == {"done"}


TRAIN_WITH_TETHER = """\
import json
import tether
p = tether.params()
for step in range(3):
    tether.log(step=step, loss=p["lr"] / (step + 1))
json.dump({"acc": p["lr"] * p["epochs"]}, open("metrics.json", "w"))
"""


def test_scripts_import_tether_beside_a_tetherfile_direct_and_queued(project: Path) -> None:
    """The DSL's file is `tetherfile.py`: a script beside it imports the tether package, so
    tether.params and tether.log work in place and on a worker; a `tether.py` (the DSL's
    first name) would be what `import tether` finds there, and is read with a warning."""
    (project / "tether.yaml").unlink()
    write(project / "tetherfile.py", DSL_SPEC)
    write(project / "train.py", TRAIN_WITH_TETHER)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the pipeline in Python; train logs steps")
    direct = tether(project, "run", "-n", "direct")
    assert "warning" not in direct.stderr
    tether(project, "run", "--queue", "-n", "queued", "-S", "lr=0.5")
    tether(project, "worker", "--exit-when-idle", timeout=180)
    records = _records(project)
    assert {n: r["status"] for n, r in records.items()} == {"direct": "success",
                                                            "queued": "success"}
    for name, lr in (("direct", 0.1), ("queued", 0.5)):
        steps = records[name]["steps"]["train"]  # type: ignore[index]
        assert [row["loss"] for row in steps] == [lr, lr / 2, lr / 3]

    git(project, "mv", "tetherfile.py", "tether.py")
    git(project, "commit", "-q", "-m", "the old name")
    spec = tether(project, "spec")
    [warning] = [line for line in spec.stderr.splitlines() if "warning" in line]
    assert "tether.py hides the tether package" in warning
    assert "git mv tether.py tetherfile.py" in warning
    failed = tether(project, "run", "-n", "shadowed", "--force", check=False)
    assert failed.returncode == 1  # train.py's `import tether` found tether.py
    assert records.keys() <= _records(project).keys()
