"""Queued and `--temp` runs keep their results, on a project shaped like example-get-started.

prepare → featurize → train → evaluate, a git-ignored input (data/data.xml),
output directories, metrics inside an output directory. Outputs of a queued run
go to the repository's cache (never the throwaway worktree's), so `tether
checkout EXP` brings them back byte for byte, and a later entry reuses unchanged
stages; an input the worker could not have is refused at enqueue; an entry that
fails before any stage is still recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import git, write
from helpers import exp_refs, record_of, repo_state
from queueing.conftest import queue_status, tether
from queueing.servers import RedisServer
from tether.cache.hashing import StatCache

PREPARE = """\
import os, pathlib, sys, yaml
p = yaml.safe_load(open("params.yaml"))["prepare"]
lines = pathlib.Path("data/data.xml").read_text().splitlines()
os.makedirs("data/prepared", exist_ok=True)
cut = int(len(lines) * p["split"])
pathlib.Path("data/prepared/train.tsv").write_text("\\n".join(lines[:cut]) + "\\n")
pathlib.Path("data/prepared/test.tsv").write_text("\\n".join(lines[cut:]) + "\\n")
print("prepared", cut, flush=True)
"""

FEATURIZE = """\
import os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["featurize"]
os.makedirs("data/features", exist_ok=True)
for part in ("train", "test"):
    rows = pathlib.Path(f"data/prepared/{part}.tsv").read_text().split()
    feats = [str(len(r) % p["max_features"]) for r in rows]
    pathlib.Path(f"data/features/{part}.txt").write_text(",".join(feats) + "\\n")
pathlib.Path("data/features/bin.dat").write_bytes(bytes(range(256)) * 64)
print("featurized", flush=True)
"""

TRAIN = """\
import os, pathlib, time, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
time.sleep(float(os.environ.get("TRAIN_SLEEP", "0")))
feats = pathlib.Path("data/features/train.txt").read_text()
pathlib.Path("model.pkl").write_bytes(f"model lr={p['lr']} n={len(feats)}".encode() * 100)
print("trained", p, flush=True)
"""

EVALUATE = """\
import json, os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
os.makedirs("eval/plots", exist_ok=True)
model = pathlib.Path("model.pkl").read_bytes()
json.dump({"avg_prec": round(p["lr"] * 3, 4), "size": len(model)},
          open("eval/metrics.json", "w"))
pathlib.Path("eval/plots/roc.csv").write_text("fpr,tpr\\n0,0\\n1,1\\n")
print("evaluated", flush=True)
"""

SPEC = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [data/data.xml, src/prepare.py]
    params: [prepare.split]
    outs: [data/prepared]
  featurize:
    cmd: python src/featurize.py
    deps: [data/prepared, src/featurize.py]
    params: [featurize.max_features]
    outs: [data/features]
  train:
    cmd: python src/train.py
    deps: [data/features, src/train.py]
    params: [train.lr]
    outs: [model.pkl]
  evaluate:
    cmd: python src/evaluate.py
    deps: [model.pkl, data/features, src/evaluate.py]
    outs: [eval]
    metrics: [eval/metrics.json]
"""

PARAMS = "prepare:\n  split: 0.75\nfeaturize:\n  max_features: 7\ntrain:\n  lr: 0.1\n"


@pytest.fixture
def getstarted(repo: Path) -> Path:
    """example-get-started in small: four stages, a git-ignored input, output dirs."""
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", PARAMS)
    for name, code in (("prepare", PREPARE), ("featurize", FEATURIZE), ("train", TRAIN),
                       ("evaluate", EVALUATE)):
        write(repo / "src" / f"{name}.py", code)
    write(repo / ".gitignore", "/data/data.xml\n/data/prepared\n/data/features\n/model.pkl\n"
          "/eval\n")
    write(repo / "data" / "data.xml",
          "".join(f"<row id='{i}' text='post number {i * 7}'/>\n" for i in range(200)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "get started")
    assert git(repo, "ls-files", "data") == ""  # the input is git-ignored
    return repo


def _exps(root: Path) -> dict[str, dict[str, object]]:
    return {ref.rsplit("/", 1)[1]: record_of(root, ref) for ref in exp_refs(root)
            if ref.startswith("refs/tether/exps/")}


def _stage(record: dict[str, object], name: str) -> dict[str, object]:
    stages = record["stages"]
    assert isinstance(stages, list)
    return next(s for s in stages if s["name"] == name)


OUTS = ("data/prepared", "data/features", "model.pkl", "eval")


def test_missing_input_is_refused_at_enqueue(getstarted: Path) -> None:
    before = repo_state(getstarted)
    proc = tether(getstarted, "run", "--queue", "-S", "train.lr=0.1,0.2", check=False)
    assert proc.returncode == 15, proc.stderr
    assert "data/data.xml" in proc.stderr and "prepare" in proc.stderr
    assert "commit it" in proc.stderr and "tether add data/data.xml" in proc.stderr
    assert queue_status(getstarted) == []
    assert [r for r in exp_refs(getstarted) if r.startswith("refs/tether/queue/")] == []
    assert repo_state(getstarted) == before


@pytest.mark.parametrize("args", [("--repeat", "0"), ("--queue=",), ("--queue", " ")])
def test_entries_no_worker_would_run_are_refused(getstarted: Path, args: tuple[str, ...]) -> None:
    git(getstarted, "add", "-f", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "data")
    full = args if args[0] != "--repeat" else ("--queue", *args)
    proc = tether(getstarted, "run", *full, check=False)
    assert proc.returncode == 2, proc.stderr
    assert ("--repeat 0" in proc.stderr) or ("queue name" in proc.stderr), proc.stderr
    assert queue_status(getstarted) == []


def test_queued_sweep_outputs_live_in_the_repository_cache(getstarted: Path) -> None:
    git(getstarted, "add", "-f", "data/data.xml")  # now in every snapshot
    git(getstarted, "commit", "-q", "-m", "data")
    before = repo_state(getstarted)
    tether(getstarted, "run", "--queue", "-n", "sweep", "-S", "train.lr=0.1,0.2")
    tether(getstarted, "worker", "--exit-when-idle")
    rows = queue_status(getstarted)
    assert [(r["name"], r["state"], r["status"]) for r in rows] == [
        ("sweep-1", "done", "success"), ("sweep-2", "done", "success")]
    exps = _exps(getstarted)
    first, second = exps["sweep-1"], exps["sweep-2"]
    # The second entry reused prepare and featurize (same inputs) from the run-cache.
    for name in ("prepare", "featurize"):
        assert _stage(first, name)["restored_from"] is None
        assert _stage(second, name)["status"] == "success"
        assert (_stage(second, name)["restored_from"] or {}).get("name") == "sweep-1"
    for name in ("train", "evaluate"):
        assert _stage(second, name)["restored_from"] is None
    assert not (getstarted / "model.pkl").exists()
    assert repo_state(getstarted) == before

    for name, record in (("sweep-1", first), ("sweep-2", second)):
        tether(getstarted, "checkout", name)
        hashes = StatCache(None)
        for stage in ("prepare", "featurize", "train", "evaluate"):
            for out, key in _stage(record, stage)["outs"].items():  # type: ignore[union-attr]
                assert hashes.hash_path(getstarted / out) == key, (name, out)
        lr = 0.1 if name == "sweep-1" else 0.2
        assert f"lr={lr} ".encode() in (getstarted / "model.pkl").read_bytes()
        metrics = json.loads((getstarted / "eval" / "metrics.json").read_text())
        assert metrics["avg_prec"] == round(lr * 3, 4) == record["metrics"]["avg_prec"]  # type: ignore[index]
    # Nothing of the throwaway worktrees stayed behind, and no second cache was made.
    assert not any((getstarted / ".tether" / "worktrees").glob("*"))
    assert git(getstarted, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_an_entry_failing_before_its_stages_is_recorded(getstarted: Path) -> None:
    from tether.queue.client import QueueRequest, enqueue

    git(getstarted, "add", "-f", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "data")
    [entry] = enqueue(getstarted, QueueRequest(name="orphan"))
    # The snapshot no longer has the input (as if it had been queued before this fix).
    git(getstarted, "rm", "-q", "--cached", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "untrack the data again")
    tree = git(getstarted, "rev-parse", "HEAD^{tree}")
    bare = git(getstarted, "commit-tree", tree, "-p", entry.baseline, "-m", "snapshot")
    git(getstarted, "update-ref", entry.snapshot_ref, bare)
    from tether.queue.client import open_queue

    queue = open_queue(getstarted)
    try:
        queue.remove([entry.id])
        from tether.structs import replace

        queue.enqueue([replace(entry, snapshot=bare)], time.time())
    finally:
        queue.close()
    proc = tether(getstarted, "worker", "--exit-when-idle", check=False)
    assert proc.returncode == 1, proc.stderr
    [row] = queue_status(getstarted)
    assert (row["state"], row["status"]) == ("failed", "failed")
    record = _exps(getstarted)["orphan"]
    assert record["status"] == "failed" and record["id"] == entry.run_id
    assert "data/data.xml" in str(record["error"])
    assert row["ref"] == f"refs/tether/exps/{entry.baseline}/orphan"
    assert "data/data.xml" in str(row["error"])
    # Asked to, the worker exits 0 although entries failed.
    tether(getstarted, "queue", "retry", str(row["id"]))
    proc = tether(getstarted, "worker", "--exit-when-idle", "--ok-on-failed-runs", check=False)
    assert proc.returncode == 0, proc.stderr


def test_killed_temp_run_leaves_no_worktree(getstarted: Path) -> None:
    git(getstarted, "add", "-f", "data/data.xml")  # --temp copies no ignored file either
    git(getstarted, "commit", "-q", "-m", "data")
    env = {**os.environ, "TRAIN_SLEEP": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "tether", "run", "--temp"], cwd=getstarted,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "train" in line and "▶" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    folder = getstarted / ".tether" / "worktrees"
    assert [p for p in folder.iterdir() if p.is_dir()]  # left behind by the kill
    assert git(getstarted, "worktree", "list", "--porcelain").count("worktree ") == 2
    # The killed run's finished stages stored their outputs in the repository's cache.
    assert any((getstarted / ".tether" / "cache" / "objects" / "b3d").glob("*/*"))
    tether(getstarted, "gc")
    assert [p for p in folder.iterdir()] == []
    assert git(getstarted, "worktree", "list", "--porcelain").count("worktree ") == 1
    # A --temp run also removes the worktree of a killed one, and then its own.
    proc = subprocess.Popen([sys.executable, "-m", "tether", "run", "--temp"], cwd=getstarted,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "train" in line and "▶" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 1
    tether(getstarted, "run", "--temp", "-n", "after")
    assert [p for p in folder.iterdir()] == []
    assert git(getstarted, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert _exps(getstarted)["after"]["status"] == "success"


def test_concurrent_entries_sharing_stages_leave_a_sound_cache(getstarted: Path) -> None:
    from tether.cache.objects import ObjectStore

    git(getstarted, "add", "-f", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "data")
    tether(getstarted, "run", "--queue", "-n", "pair", "-S", "train.lr=0.3,0.4")
    tether(getstarted, "worker", "-j", "2", "--exit-when-idle")
    assert [r["state"] for r in queue_status(getstarted)] == ["done", "done"]
    store = ObjectStore(getstarted, link_order=("copy",))
    keys = list(store.iter_keys())
    assert keys and all(store.verify(key) for key in keys)
    assert not any((store.dir / "tmp").glob("*"))  # no half-written object left
    for name, record in _exps(getstarted).items():
        tether(getstarted, "checkout", name)
        hashes = StatCache(None)
        for stage in ("prepare", "featurize", "train", "evaluate"):
            for out, key in _stage(record, stage)["outs"].items():  # type: ignore[union-attr]
                assert hashes.hash_path(getstarted / out) == key, (name, out)


def test_celery_worker_keeps_outputs_in_the_repository_cache(
    getstarted: Path, redis_server: RedisServer
) -> None:
    pytest.importorskip("celery")
    import uuid

    import yaml

    write(getstarted / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
        "backend": "celery", "broker": redis_server.url,
        "namespace": f"t{uuid.uuid4().hex[:10]}"}}))
    git(getstarted, "add", "-A")
    git(getstarted, "add", "-f", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "data, celery queue")
    before = repo_state(getstarted)
    tether(getstarted, "run", "--queue", "-n", "cel", "-S", "train.lr=0.5,0.6")
    tether(getstarted, "worker", "--exit-when-idle", timeout=240)
    rows = sorted(queue_status(getstarted), key=lambda r: str(r["name"]))
    assert [(r["name"], r["state"], r["status"]) for r in rows] == [
        ("cel-1", "done", "success"), ("cel-2", "done", "success")]
    exps = _exps(getstarted)
    assert (_stage(exps["cel-2"], "featurize")["restored_from"] or {}).get("name") == "cel-1"
    for name, record in exps.items():
        tether(getstarted, "checkout", name)
        hashes = StatCache(None)
        for stage in ("prepare", "featurize", "train", "evaluate"):
            for out, key in _stage(record, stage)["outs"].items():  # type: ignore[union-attr]
                assert hashes.hash_path(getstarted / out) == key, (name, out)
    state = repo_state(getstarted)
    assert {k: state[k] for k in ("head", "symbolic", "branches", "index", "staged")} == {
        k: before[k] for k in ("head", "symbolic", "branches", "index", "staged")}


def test_repeated_seeds_each_run_their_stages(getstarted: Path) -> None:
    git(getstarted, "add", "-f", "data/data.xml")
    git(getstarted, "commit", "-q", "-m", "data")
    tether(getstarted, "run", "--queue", "--repeat", "2", "-n", "seeded")
    tether(getstarted, "worker", "--exit-when-idle")
    exps = _exps(getstarted)
    assert sorted(exps) == ["seeded-1", "seeded-2"]
    # The stages see TETHER_SEED: a copy with another seed is another run, not a restore.
    assert all(_stage(record, "train")["restored_from"] is None for record in exps.values())
