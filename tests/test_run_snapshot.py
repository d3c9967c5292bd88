"""A run recorded against a baseline other than the workspace's HEAD (queue workers)."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from helpers import exp_refs, only_record
from tether.execute.runner import RunContext, RunOptions, run


def test_run_records_against_given_baseline_from_snapshot(repo: Path) -> None:
    baseline = git(repo, "rev-parse", "HEAD")
    write(repo / "job.sh", "echo from-snapshot > out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "snapshot of the user's workspace")
    result = run(repo, RunOptions(command=["sh", "job.sh"], name="queued"),
                 RunContext(baseline=baseline, run_id="0123456789abcdef"))
    assert result.status == "success"
    ref = f"refs/tether/exps/{baseline}/queued"
    assert ref in exp_refs(repo)
    assert git(repo, "rev-parse", f"{ref}^") == baseline
    assert git(repo, "show", f"{ref}:job.sh") == "echo from-snapshot > out.txt"
    assert git(repo, "show", f"{ref}:out.txt") == "from-snapshot"
    assert only_record(repo)["id"] == "0123456789abcdef"
