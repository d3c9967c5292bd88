"""End to end as in CI: real `tether run`s on main, pushed to a bare remote; a fresh clone
runs a change, reports and gates it; the user's HEAD, index and branches stay untouched."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, run_tether, write
from feedback.fakeforge import WRITE_TOKEN, FakeForge
from helpers import repo_state
from tether.errors import EXIT_REGRESSED

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [features]
  train:
    cmd: python train.py
    deps: [train.py, features]
    params: [train]
    metrics: [metrics.json]
metrics:
  acc: {direction: max, tolerance: 1%, warn: 3%}
  loss: {direction: min, tolerance: 0.02}
  seconds: {direction: min, gate: false}
"""

PREPARE = """\
import os
os.makedirs("features", exist_ok=True)
rows = open("data/raw.csv").read().splitlines()
open("features/rows.txt", "w").write(str(len(rows)))
"""

TRAIN = """\
import json, tether
p = tether.params()["train"]
if p["lr"] > 1:
    raise SystemExit("diverged: lr too high")
for step in range(20):
    tether.log(step=step, loss=1.0 / (step + 1 + p["lr"] * 10))
json.dump({"acc": round(0.9 - abs(p["lr"] - 0.1), 4), "loss": round(0.3 + p["lr"], 4),
           "seconds": 1.0}, open("metrics.json", "w"))
"""


def _project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "train:\n  lr: 0.1\n")
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "data" / "raw.csv", "a,b\n1,2\n3,4\n")
    write(root / ".gitignore", "metrics.json\nfeatures/\ntether-steps.jsonl\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")


def _run(root: Path, *args: str, code: int = 0) -> None:
    proc = run_tether(root, "run", "-q", *args)
    assert proc.returncode == code, proc.stdout + proc.stderr


def test_pull_request_flow(repo: Path, tmp_path: Path) -> None:
    _project(repo)
    _run(repo)                                  # the main build
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    assert run_tether(repo, "push", "--no-artifacts").returncode == 0

    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", f"file://{bare}", str(clone))
    git(clone, "switch", "-q", "-c", "lower-lr")
    write(clone / "params.yaml", "train:\n  lr: 0.12\n")   # acc -2%: a warning
    git(clone, "commit", "-q", "-am", "try lr 0.12")
    _run(clone)
    gate = run_tether(clone, "gate", "--json")
    assert gate.returncode == 0, gate.stderr
    data = json.loads(gate.stdout)
    assert data["verdict"] == "warned"
    verdicts = {m["metric"]: m["verdict"] for m in data["metrics"]}
    assert verdicts == {"acc": "warn", "loss": "same", "seconds": "same"}
    assert data["params"] == [{"param": "train.lr", "value": 0.12, "baseline": 0.1}]

    # A diverging change: the run fails, is recorded, and the report shows its log.
    write(clone / "params.yaml", "train:\n  lr: 5\n")
    git(clone, "commit", "-q", "-am", "try lr 5")
    _run(clone, code=1)
    before = repo_state(clone)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 12, "pull_request": {"number": 12}}))
    with FakeForge() as forge:
        env = {"GITHUB_API_URL": forge.url, "GITHUB_REPOSITORY": "acme/models",
               "GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": WRITE_TOKEN}
        report = run_tether(clone, "report", "--comment", env=env)
        assert report.returncode == 0, report.stderr
        (body,) = [c["body"] for c in forge.comments.values()]
    assert "❌ run failed" in body.splitlines()[1]
    assert "**Stage `train` failed** (exit 1)" in body
    assert "diverged: lr too high" in body
    gate = run_tether(clone, "gate")
    assert gate.returncode == EXIT_REGRESSED
    assert "did not succeed (failed)" in gate.stderr
    # Gate and report leave HEAD, the index, branches and files alone.
    assert repo_state(clone) == before
