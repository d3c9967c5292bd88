"""`tether show` through the real CLI on experiments recorded by `tether run`."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PINNED_ENV, git, write
from tether.cli.show import render_table
from tether.experiments.explore import show_experiments

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.lr, train.epochs]
    metrics: [metrics.json]
metrics:
  acc: {direction: max}
  loss: {direction: min, tolerance: 0.01}
"""
TRAIN = """\
import json
import tether
lr = tether.params()["train"]["lr"]
json.dump({"acc": round(1 - lr, 4), "loss": lr, "other": 7}, open("metrics.json", "w"))
"""
PARAMS = "train:\n  lr: 0.1\n  epochs: 3\n  seed: 1\n"


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def tether(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tether", *args], cwd=self.root,
                              capture_output=True, text=True, env=self.env, timeout=120)

    def show(self, *args: str) -> str:
        proc = self.tether("show", *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def names(self, *args: str) -> list[str]:
        return [exp["name"] for exp in json.loads(self.show("--json", *args))]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Runs a (lr 0.1), b (0.01), c (0.5) on the first commit; d (0.2) on the tagged second."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))}
    env.update(PINNED_ENV, HOME=str(home), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
    root = tmp_path_factory.mktemp("show") / "project"
    root.mkdir()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        git(root, "init", "-q", "-b", "main")
        write(root / "tether.yaml", SPEC)
        write(root / "train.py", TRAIN)
        write(root / "params.yaml", PARAMS)
        write(root / ".gitignore", "metrics.json\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "start")
        project = Project(root, env)
        for name, lr in (("a", "0.1"), ("b", "0.01"), ("c", "0.5")):
            proc = project.tether("run", "-n", name, "-S", f"train.lr={lr}", "-m", f"lr {lr}")
            assert proc.returncode == 0, proc.stderr
        write(root / "notes.txt", "second\n")
        git(root, "add", "notes.txt")
        git(root, "commit", "-q", "-m", "second")
        git(root, "tag", "-a", "v1", "-m", "v1")
        proc = project.tether("run", "-n", "d", "-S", "train.lr=0.2")
        assert proc.returncode == 0, proc.stderr
        yield project
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_table_groups_by_baseline_with_changed_params_and_best_values(project: Project) -> None:
    out = project.show("--baseline", "HEAD~1")
    first = git(project.root, "rev-parse", "HEAD~1")
    lines = out.splitlines()
    assert lines[0] == f"baseline {first[:7]}"
    assert lines[1].split() == ["name", "created", "status", "duration", "train.lr",
                                "acc", "loss", "other"]
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert list(rows) == ["a", "b", "c"]  # oldest first
    assert rows["b"][-4:] == ["0.01", "0.99*", "0.01*", "7"]  # best acc (max) and loss (min)
    assert rows["a"][-3:] == ["0.9", "0.1", "7"]  # no rule for `other`: never marked
    assert all(row[3] == "success" for row in rows.values())
    assert "* best value" in out
    assert "\x1b[" not in out  # piped: no colors
    assert "seed" not in out and "epochs" not in out  # unchanged params are hidden
    assert "train.seed" in project.show("--baseline", "HEAD~1", "--all-params")


def test_head_by_default_and_every_baseline_with_labels(project: Project) -> None:
    assert project.names() == ["d"]
    head = git(project.root, "rev-parse", "HEAD")
    out = project.show("-A")
    assert f"baseline {head[:7]} (main, v1)" in out
    assert out.index("baseline") < out.index(f"baseline {head[:7]}")
    assert project.names("-A") == ["a", "b", "c", "d"]
    assert project.names("--baseline", "v1") == ["d"]


def test_sort_filter_and_last(project: Project) -> None:
    assert project.names("-A", "--sort-by", "metrics.loss") == ["b", "a", "d", "c"]
    assert project.names("-A", "--sort-by", "metrics.loss", "--desc") == ["c", "d", "a", "b"]
    assert project.names("-A", "--sort-by", "params.train.lr", "--last", "2") == ["d", "c"]
    assert project.names("-A", "--desc") == ["d", "c", "b", "a"]
    assert project.names("-A", "--filter", "params.train.lr < 0.2 and metrics.acc > 0.5") == [
        "a", "b"]
    assert project.names("-A", "--filter", "name in ('c', 'd') or metrics.nope > 1") == [
        "c", "d"]
    assert project.names("-A", "--filter", "message == 'lr 0.5'") == ["c"]
    assert project.show("-A", "--filter", "status == 'failed'").startswith(
        "no experiment matches (of 4 in scope)")


def test_usage_errors(project: Project) -> None:
    proc = project.tether("show", "--filter", "metrics.acc >> 1")
    assert proc.returncode == 2
    assert "  metrics.acc >> 1\n               ^" in proc.stderr
    for args in (["--sort-by", "bogus"], ["--baseline", "no-such-rev"], ["--last", "0"],
                 ["--json", "--csv"]):
        assert project.tether("show", *args).returncode == 2, args


def test_json_csv_and_markdown(project: Project) -> None:
    data = json.loads(project.show("-A", "--json"))
    b = next(exp for exp in data if exp["name"] == "b")
    assert b["params"] == {"train.lr": 0.01, "train.epochs": 3, "train.seed": 1}
    assert b["metrics"] == {"acc": 0.99, "loss": 0.01, "other": 7}
    assert b["status"] == "success" and b["message"] == "lr 0.01"
    assert b["ref"] == f"refs/tether/exps/{b['baseline']}/b"
    assert set(b) >= {"commit", "created", "created_at", "duration"}

    rows = list(csv.DictReader(io.StringIO(project.show("-A", "--csv"))))
    assert [r["name"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1]["params.train.lr"] == "0.01" and rows[1]["metrics.acc"] == "0.99"
    assert rows[3]["baseline"] == git(project.root, "rev-parse", "HEAD")

    md = project.show("-A", "--md")
    assert re.search(r"^### baseline [0-9a-f]{7} \(main, v1\)$", md, re.M)
    assert "| name | created | status | duration | train.lr | acc | loss | other |" in md
    assert re.search(r"^\| b \|.*\| 0\.99\* \| 0\.01\* \| 7 \|$", md, re.M)


def test_fits_a_given_width_and_says_what_it_hid(project: Project) -> None:
    out = project.show("-A", "--width", "60")
    assert "columns hidden to fit 60 characters" in out
    table = [line for line in out.splitlines() if line and "hidden" not in line]
    assert max(len(line) for line in table) <= 60
    assert "acc" in out.splitlines()[1]  # params go before metrics
    assert "hidden" not in project.show("-A", "--width", "0")


def test_colors_on_a_terminal(project: Project) -> None:
    result = show_experiments(project.root, all_baselines=True)
    colored = render_table(result, width=200, color=True)
    assert "\x1b[1;32m0.99" in colored
    assert "0.99*" not in colored


def test_the_index_file_can_vanish_between_calls(project: Project) -> None:
    assert project.names("-A") == ["a", "b", "c", "d"]
    index = project.root / ".tether" / "index.db"
    index.unlink()
    assert project.names("-A") == ["a", "b", "c", "d"]
    assert index.exists()


def test_nothing_against_head_points_at_where_experiments_are(repo: Path) -> None:
    """After committing, HEAD has no experiments yet: say where they are, not just 'none'."""
    import subprocess
    import sys

    def tether(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tether", *args], cwd=repo,
                              capture_output=True, text=True)

    assert tether("run", "-n", "before", "--", "python", "-c", "print(1)").returncode == 0
    (repo / "more.txt").write_text("x\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "more"], cwd=repo, check=True)
    out = tether("show").stdout
    assert "no experiments recorded against HEAD" in out
    assert "1 experiment is recorded against other commits" in out and "show -A" in out
