"""GIT_DIR / GIT_WORK_TREE, orphan branches: tether works on the repository git would."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from gitstates.conftest import exp_ref, make_project, snapshot_state, tether
from helpers import exp_refs


def test_git_dir_naming_another_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    write(other / "a.txt", "a\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "other")
    before = snapshot_state(repo)
    env = {"GIT_DIR": str(other / ".git"), "GIT_WORK_TREE": str(other)}
    for args in (["run", "-n", "x"], ["run", "--temp", "-n", "y"], ["show"]):
        proc = tether(repo, *args, env=env, check=False)
        assert proc.returncode == 4, (args, proc.stderr)
        assert "GIT_DIR" in proc.stderr and "unset" in proc.stderr, proc.stderr
    assert exp_refs(repo) == {} and exp_refs(other) == {}
    assert snapshot_state(repo) == before


def test_git_work_tree_elsewhere_is_refused(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = tether(repo, "run", "-n", "x", env={"GIT_WORK_TREE": str(elsewhere)}, check=False)
    assert proc.returncode == 4, proc.stderr
    assert "GIT_WORK_TREE" in proc.stderr
    assert exp_refs(repo) == {}


def test_git_dir_of_the_same_repository_as_a_hook_sets_it(repo: Path) -> None:
    make_project(repo)
    (repo / "sub").mkdir()
    # A hook runs with GIT_DIR=.git at the top level; tether called from it must just work.
    tether(repo, "run", "-n", "fromhook", env={"GIT_DIR": ".git"})
    tether(repo / "sub", "run", "--temp", "-n", "fromhook2",
           env={"GIT_DIR": str(repo / ".git"), "GIT_WORK_TREE": str(repo)})
    exp_ref(repo, "fromhook")
    exp_ref(repo, "fromhook2")


def test_orphan_branch_message_says_what_is_true(repo: Path) -> None:
    make_project(repo)
    git(repo, "checkout", "-q", "--orphan", "fresh")
    proc = tether(repo, "run", "-n", "x", check=False)
    assert proc.returncode == 4
    assert "'fresh'" in proc.stderr and "orphan" in proc.stderr, proc.stderr
    empty = repo.parent / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    proc = tether(empty, "run", "-n", "x", "--", "true", check=False)
    assert proc.returncode == 4 and "has no commit yet" in proc.stderr
    assert "orphan branch" not in proc.stderr
