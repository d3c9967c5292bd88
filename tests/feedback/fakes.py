"""Experiments recorded straight through tether's gitstore, with chosen metrics and status.

Gate verdicts depend only on what records hold, so most feedback tests write records
with exactly the metrics a case needs (a real `tether run` is covered end to end once).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conftest import git, write
from tether.gitstore.git import Git
from tether.layout import RECORD_PATH, exp_ref, tmp_dir
from tether.record.record import RunRecord, StageRecord

RULES = {
    "acc": {"direction": "max", "tolerance": {"kind": "rel", "value": 0.01},
            "warn": {"kind": "rel", "value": 0.05}},
    "loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.05}},
    "latency": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.0}, "gate": False},
    "f1_rare": {"direction": "max", "tolerance": {"kind": "abs", "value": 0.0},
                "allow_missing": True},
}

_CLOCK = [time.time() - 100_000]


def commit(root: Path, message: str) -> str:
    """A new commit on the current branch (a file changes); its sha."""
    write(root / "history.txt", f"{message}\n")
    git(root, "add", "history.txt")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def fake_experiment(
    root: Path, name: str, metrics: dict[str, Any], *, baseline: str | None = None,
    status: str = "success", rules: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None, steps: dict[str, list[dict[str, Any]]] | None = None,
    stages: list[StageRecord] | None = None, duration: float = 3.5,
    fields: dict[str, Any] | None = None,
) -> str:
    """Record an experiment against `baseline` (HEAD) with these metrics; its ref."""
    g = Git(root)
    base = baseline or g.head_commit()
    _CLOCK[0] += 1
    created = _CLOCK[0]
    record = RunRecord(
        id=f"run-{name}-{created}", name=name, message="", baseline=base, branch="main",
        kind="pipeline", status=status, exit_code=0 if status == "success" else 1,
        created_at=created, started_at=created, ended_at=created + duration,
        duration=duration, argv=["tether", "run"], targets=[], overrides=[],
        params={"params.yaml": params or {"train": {"lr": 0.1}}}, metrics=metrics,
        steps=steps or {}, stages=stages or [StageRecord(name="train", status=status)],
        code={"commit": base, "dirty": False}, environment={},
        spec={"stages": {"train": {"cmd": ["python", "train.py"]}},
              "metrics": RULES if rules is None else rules},
    )
    for key, value in (fields or {}).items():  # e.g. what a hostile remote would push
        setattr(record, key, value)
    scratch = tmp_dir(root)
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"record-{os.getpid()}-{created}.json"
    path.write_text(record.dumps())
    blob = g.out("hash-object", "-w", "--no-filters", str(path))
    path.unlink()
    record_dir, record_file = RECORD_PATH.split("/")
    sub = g.out("mktree", input=f"100644 blob {blob}\t{record_file}\n")
    base_tree = g.out("rev-parse", f"{base}^{{tree}}")
    entries = g.out("ls-tree", base_tree)
    tree = g.out("mktree", input=f"{entries}\n040000 tree {sub}\t{record_dir}\n")
    commit = g.out("commit-tree", tree, "-p", base, input=f"tether: {name} ({status})\n")
    ref = exp_ref(base, name)
    g.update_ref(ref, commit, old="")
    return ref



