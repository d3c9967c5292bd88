"""Declared outputs are git-ignored when a run produces them, as DVC does, so `git status`
shows the pipeline's sources, not its products."""

from __future__ import annotations

from pathlib import Path

from conftest import git, run_tether, write
from helpers import exp_refs, tree_files

SPEC = """\
stages:
  make:
    cmd: python make.py
    outs: [out/models, report.txt, kept.txt]
"""
MAKE = """\
import os
os.makedirs("out/models", exist_ok=True)
open("out/models/m.bin", "w").write("m")
open("report.txt", "w").write("r")
open("kept.txt", "w").write("k")
"""

def test_outputs_are_ignored_once_and_tracked_ones_are_left_alone(repo: Path) -> None:
    write(repo / "tether.yaml", SPEC)
    write(repo / "make.py", MAKE)
    write(repo / "kept.txt", "tracked on purpose\n")
    write(repo / "out" / ".gitignore", "# the user's own rules\n*.tmp\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    proc = run_tether(repo, "run", "-n", "first")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "out" / ".gitignore").read_text() == "# the user's own rules\n*.tmp\n/models\n"
    assert (repo / ".gitignore").read_text() == "/report.txt\n"
    status = git(repo, "status", "--porcelain", "-uall").splitlines()
    assert not any("models/" in line or "report.txt" in line for line in status), status
    assert any(line.endswith("M kept.txt") for line in status)  # tracked: still shown
    # Runs again add nothing twice; an experiment's tree does not carry the new rules.
    assert run_tether(repo, "run", "-n", "second", "--force").returncode == 0
    assert (repo / ".gitignore").read_text() == "/report.txt\n"
    first = next(r for r in exp_refs(repo) if r.endswith("/first"))
    assert ".gitignore" not in tree_files(repo, first)  # ignored after the commit


def test_rules_that_already_ignore_an_output_are_enough(repo: Path) -> None:
    write(repo / "tether.yaml", SPEC.replace(", kept.txt", ""))
    write(repo / "make.py", MAKE)
    write(repo / ".gitignore", "out/\n*.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    assert run_tether(repo, "run").returncode == 0
    assert (repo / ".gitignore").read_text() == "out/\n*.txt\n"
    assert not (repo / "out" / ".gitignore").exists()
