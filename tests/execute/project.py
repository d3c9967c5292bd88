"""A realistic multi-stage project for the run-path tests (prepare → train → evaluate).

Modelled on iterative/example-get-started: git-ignored raw data, an output
directory per stage, the evaluation metrics inside the evaluation's output
directory, and failing variants selected by params (`train.min_split < 0`,
`evaluate.fail`, `evaluate.fail=garbage`).
"""

from __future__ import annotations

from pathlib import Path

from conftest import git, write

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.txt]
    params: [prepare.split]
    outs: [data/prepared]
  train:
    cmd: python train.py
    deps: [train.py, data/prepared]
    params: [train.min_split, train.lr]
    outs: [model.bin]
    metrics: [train_metrics.json]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, model.bin, data/prepared]
    params: [evaluate.fail]
    outs: [eval]
    metrics: [eval/metrics.json]
    plots: [eval/plots/roc.csv]
metrics:
  acc: {direction: max}
  loss: {direction: min}
"""

PARAMS = """\
prepare:
  split: 0.25  # held-out share
train:
  min_split: 2
  lr: 0.5
evaluate:
  fail: false
"""

PREPARE = """\
import os, tether
split = tether.params()["prepare"]["split"]
rows = open("data/raw.txt").read().split()
cut = int(len(rows) * (1 - split))
os.makedirs("data/prepared", exist_ok=True)
open("data/prepared/train.txt", "w").write("\\n".join(rows[:cut]))
open("data/prepared/test.txt", "w").write("\\n".join(rows[cut:]))
"""

TRAIN = """\
import json, sys, tether
p = tether.params()["train"]
if p["min_split"] < 0:
    sys.exit(f"min_split must be >= 0, got {p['min_split']}")
rows = open("data/prepared/train.txt").read().split()
open("model.bin", "wb").write(f"model lr={p['lr']} n={len(rows)}".encode())
json.dump({"loss": round(1.0 - p["lr"] / 2, 4)}, open("train_metrics.json", "w"))
"""

EVALUATE = """\
import json, os, sys, tether
p = tether.params()
model = open("model.bin", "rb").read().decode()
lr = float(model.split("lr=")[1].split()[0])
os.makedirs("eval/plots", exist_ok=True)
open("eval/plots/roc.csv", "w").write("fpr,tpr\\n0,0\\n0.5,0.8\\n1,1\\n")
if p["evaluate"]["fail"] == "garbage":  # exits 0 with an unreadable metrics file
    open("eval/metrics.json", "w").write("{bad")
    sys.exit(0)
if p["evaluate"]["fail"]:
    sys.exit("evaluation crashed")
json.dump({"acc": round(0.5 + lr / 2, 4)}, open("eval/metrics.json", "w"))
"""


def make_project(root: Path) -> Path:
    """Write and commit the project; raw data stays untracked (git-ignored)."""
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", PARAMS)
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "evaluate.py", EVALUATE)
    write(root / ".gitignore", "data/\nmodel.bin\neval/\ntrain_metrics.json\n")
    write(root / "data" / "raw.txt", "\n".join(str(i) for i in range(40)) + "\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    return root
