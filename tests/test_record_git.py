"""How a run talks to git: questions asked early, the commit made by fast-import alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, only_record
from tether.errors import ExperimentError
from tether.gitstore.fastrecord import record_commit
from tether.gitstore.git import Git


def _packs(repo: Path) -> set[str]:
    return {p.name for p in (repo / ".git/objects/pack").glob("*.pack")}


def _fsck_ok(repo: Path) -> bool:
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=repo, capture_output=True)
    return fsck.returncode == 0


def _loose(repo: Path) -> int:
    out = git(repo, "count-objects", "-v")
    return int(next(line for line in out.splitlines() if line.startswith("count:")).split()[1])


def test_run_from_a_subdirectory_records_the_whole_work_tree(repo: Path) -> None:
    write(repo / "src" / "model.py", "depth = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    write(repo / "src" / "model.py", "depth = 2\n")  # uncommitted change
    write(repo / "notes" / "idea.txt", "try depth 3\n")  # untracked, outside the cwd
    sub = repo / "src"
    assert run_tether(sub, "run", "-n", "deep", "--", "true").returncode == 0
    code = only_record(repo)["code"]
    assert "+depth = 2" in code["diff"] and "src/model.py" in code["diff"]
    assert code["untracked"] == ["notes/idea.txt"]
    assert code["dirty"] is True


def test_a_run_outside_git_fails_cleanly_and_reaps_its_git_questions(tmp_path: Path) -> None:
    result = run_tether(tmp_path, "run", "--", "true")
    assert result.returncode == 4, result.stderr
    assert "not inside a git repository" in result.stderr


def test_a_record_is_one_small_pack_while_packs_are_few(repo: Path) -> None:
    git(repo, "gc", "-q")
    before, loose = _packs(repo), _loose(repo)
    assert run_tether(repo, "run", "-n", "packed", "--", "echo", "hi").returncode == 0
    assert len(_packs(repo) - before) == 1
    assert _loose(repo) == loose
    assert _fsck_ok(repo)


def test_small_packs_are_merged_every_thirty_records(repo: Path) -> None:
    for i in range(29):  # small packs, as earlier records would have left
        write(repo / f"f{i}.txt", f"{i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}")
        git(repo, "repack", "-q")
    assert len(_packs(repo)) >= 29
    assert run_tether(repo, "run", "-n", "merging", "--", "echo", "hi").returncode == 0
    assert len(_packs(repo)) < 5
    assert _fsck_ok(repo)
    assert git(repo, "show", "HEAD:f28.txt") == "28"
    assert len(exp_refs(repo)) == 1


def test_a_run_in_a_linked_worktree_packs_into_the_shared_repository(repo: Path) -> None:
    git(repo, "gc", "-q")
    before = _packs(repo)
    linked = repo.parent / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    assert run_tether(linked, "run", "-n", "elsewhere", "--", "echo", "hi").returncode == 0
    assert len(_packs(repo) - before) == 1
    assert len(exp_refs(repo)) == 1


def test_a_taken_name_is_never_overwritten(repo: Path) -> None:
    assert run_tether(repo, "run", "-n", "mine", "--", "echo", "first").returncode == 0
    (ref, first), = exp_refs(repo).items()
    head = git(repo, "rev-parse", "HEAD")
    write(repo / "other.txt", "another run's output\n")
    with pytest.raises(ExperimentError, match="already used"):
        record_commit(Git(repo), repo, baseline=head, name="mine", message="second\n",
                      ident="t <t@example.com>", run_id="r2", scratch=repo / ".tether/tmp")
    assert exp_refs(repo) == {ref: first}
