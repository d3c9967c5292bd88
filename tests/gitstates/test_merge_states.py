"""A run in the middle of a merge or a rebase records the work tree and leaves the state be."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import git, write
from gitstates.conftest import (
    assert_repo_untouched,
    assert_stored_as_git_add,
    exp_ref,
    make_project,
    run_every_way,
    snapshot_state,
)


def _diverge(repo: Path) -> None:
    make_project(repo)
    write(repo / "notes.txt", "base\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    git(repo, "checkout", "-q", "-b", "other")
    write(repo / "notes.txt", "theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    write(repo / "notes.txt", "ours\n")
    git(repo, "commit", "-q", "-am", "ours")


def test_run_during_a_conflicted_merge(repo: Path) -> None:
    _diverge(repo)
    merge = subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True)
    assert merge.returncode != 0  # a conflict: MERGE_HEAD, index stages 1-3
    before = snapshot_state(repo)
    assert "MERGE_HEAD" in before["git_dir"]

    records = run_every_way(repo, queue=False)

    for name in records:
        assert_stored_as_git_add(repo, exp_ref(repo, name), ["notes.txt"])
    assert_repo_untouched(repo, before)


def test_run_during_a_stopped_rebase(repo: Path) -> None:
    _diverge(repo)
    git(repo, "checkout", "-q", "other")
    rebase = subprocess.run(["git", "rebase", "-q", "main"], cwd=repo, capture_output=True)
    assert rebase.returncode != 0
    before = snapshot_state(repo)
    assert "rebase-merge" in before["git_dir"]

    records = run_every_way(repo)

    for name in records:
        assert_stored_as_git_add(repo, exp_ref(repo, name), ["notes.txt"])
    assert_repo_untouched(repo, before)
