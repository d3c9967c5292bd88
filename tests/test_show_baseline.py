"""`tether show`'s baseline row and params compared with the baseline, on a realistic project.

prepare → train, an output directory, git-ignored raw data and metrics, a failing variant;
experiments recorded by the real `tether run`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import git, run_tether, write

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [prepared]
  train:
    cmd: python train.py
    deps: [train.py, prepared]
    params: [train]
    metrics: [metrics.json]
metrics:
  acc: {direction: max}
"""
PREPARE = """\
import os
os.makedirs("prepared", exist_ok=True)
rows = open("data/raw.csv").read().splitlines()
open("prepared/rows.txt", "w").write("\\n".join(rows[1:]) + "\\n")
"""
TRAIN = """\
import json, sys
import tether
p = tether.params()["train"]
if p["lr"] > 1:
    sys.exit("diverged")
rows = open("prepared/rows.txt").read().split()
json.dump({"acc": round(1 - p["lr"] / p["epochs"], 4), "rows": len(rows)},
          open("metrics.json", "w"))
"""
PARAMS = "train:\n  lr: 0.1\n  epochs: 4\n  seed: 7\n"


def _project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "params.yaml", PARAMS)
    write(root / "data" / "raw.csv", "x\n1\n2\n3\n")
    write(root / ".gitignore", "/data/\nmetrics.json\n/prepared/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")


def _tether(root: Path, *args: str) -> str:
    proc = run_tether(root, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _rows(out: str) -> dict[str, dict[str, str]]:
    """The first group's rows by name, as {column: cell} (columns are 2+ spaces apart)."""
    lines = out.split("\n\n")[0].splitlines()[1:]
    header = re.split(r"\s{2,}", lines[0])
    return {cells[0]: dict(zip(header, cells, strict=True))
            for cells in (re.split(r"\s{2,}", line) for line in lines[1:])}


def test_baseline_row_first_and_params_compared_with_it(repo: Path) -> None:
    _project(repo)
    # The commit's own run, then variants that all share lr=0.5, one of them dirty.
    _tether(repo, "run", "-n", "as-committed")
    _tether(repo, "run", "-n", "fast", "-S", "train.lr=0.5")
    _tether(repo, "run", "-n", "fast-long", "-S", "train.lr=0.5", "-S", "train.epochs=8")
    assert run_tether(repo, "run", "-n", "boom", "-S", "train.lr=2").returncode == 1
    write(repo / "params.yaml", PARAMS.replace("seed: 7", "seed: 9"))
    _tether(repo, "run", "-n", "dirty")  # edited params.yaml: not the commit's own run
    git(repo, "checkout", "-q", "--", "params.yaml")

    out = _tether(repo, "show")
    rows = _rows(out)
    assert list(rows) == ["as-committed [baseline]", "fast", "fast-long", "boom", "dirty"]
    assert rows["as-committed [baseline]"]["train.lr"] == "0.1"
    assert rows["dirty"]["train.seed"] == "9"

    # --last 2 keeps fast-long and dirty... and the baseline row as the reference;
    # a filter on runs that all share lr=0.5 still shows lr, which the baseline does not.
    rows = _rows(_tether(repo, "show", "--filter", "params.train.lr == 0.5"))
    assert list(rows) == ["as-committed [baseline]", "fast", "fast-long"]
    assert [row["train.lr"] for row in rows.values()] == ["0.1", "0.5", "0.5"]
    assert "train.seed" not in next(iter(rows.values()))  # same everywhere: hidden
    md = _tether(repo, "show", "--md", "--last", "1")
    assert "| as-committed [baseline] |" in md and "| dirty |" in md

    data = {e["name"]: e for e in json.loads(_tether(repo, "show", "--json"))}
    assert [name for name, e in data.items() if e["as_committed"]] == ["as-committed"]
    assert not data["boom"]["as_committed"]  # -S override


def test_without_a_baseline_run_params_come_from_the_commit(repo: Path) -> None:
    _project(repo)
    _tether(repo, "run", "-n", "one", "-S", "train.lr=0.3")
    _tether(repo, "run", "-n", "two", "-S", "train.lr=0.3")
    out = _tether(repo, "show")
    assert "[baseline]" not in out
    rows = _rows(out)
    assert list(rows) == ["one", "two"]
    assert rows["one"]["train.lr"] == rows["two"]["train.lr"] == "0.3"  # params.yaml: 0.1
    assert "train.epochs" not in rows["one"]
    csv_header = _tether(repo, "show", "--csv").splitlines()[0]
    assert "params.train.lr" in csv_header and "params.train.epochs" not in csv_header

    # Another commit with one as-committed run: each group has its own reference.
    write(repo / "params.yaml", PARAMS.replace("lr: 0.1", "lr: 0.3"))
    git(repo, "commit", "-q", "-am", "lr 0.3")
    _tether(repo, "run", "-n", "main-build")
    out = _tether(repo, "show", "-A")
    groups = out.split("\n\n")
    assert "[baseline]" not in groups[0] and "main-build [baseline]" in groups[1]
