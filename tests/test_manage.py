"""`tether apply`, `branch`, `rename` and `remove` on real repositories."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, repo_state, tree_files
from tether.errors import ExperimentError
from tether.experiments.manage import remove_experiments, select_for_removal
from tether.experiments.resolve import resolve_experiment, with_records
from tether.gitstore.git import Git

CHANGE = """\
import os, pathlib
pathlib.Path('a.txt').write_text('exp a\\n')
os.remove('c.txt')
pathlib.Path('new').mkdir()
pathlib.Path('new/d.txt').write_text('d\\n')
"""


def record(root: Path, name: str, code: str = "print('ok')") -> None:
    proc = run_tether(root, "run", "-q", "-n", name, "--", "python", "-c", code)
    assert proc.returncode in (0, 1), proc.stderr


@pytest.fixture
def project(repo: Path) -> Path:
    """`exp` changed a.txt, deleted c.txt and added new/d.txt; the workspace is back at HEAD."""
    for name in "abc":
        write(repo / f"{name}.txt", f"base {name}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")
    record(repo, "exp", CHANGE)
    git(repo, "checkout", "-q", "--", ".")
    git(repo, "clean", "-fdq")
    return repo


# ----------------------------------------------------------------------------- apply


def test_apply_restores_files_without_touching_head_or_index(project: Path) -> None:
    before = repo_state(project)
    proc = run_tether(project, "apply", "exp")
    assert proc.returncode == 0, proc.stderr
    assert (project / "a.txt").read_text() == "exp a\n"
    assert (project / "new" / "d.txt").read_text() == "d\n"
    assert not (project / "c.txt").exists()
    assert (project / "b.txt").read_text() == "base b\n"
    assert "updated a.txt" in proc.stdout and "deleted c.txt" in proc.stdout
    after = repo_state(project)
    for key in ("head", "symbolic", "branches", "index", "staged"):
        assert after[key] == before[key], key
    assert not (project / ".tether" / "record.json").exists()
    again = run_tether(project, "apply", "exp")  # nothing left to change
    assert again.returncode == 0 and again.stdout == ""


def test_apply_in_the_way_of_a_git_ignored_file_says_to_move_it(repo: Path) -> None:
    write(repo / ".gitignore", "metrics.json\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "ignore metrics")
    record(repo, "scored", "open('metrics.json', 'w').write('{\"acc\": 0.5}')")
    assert "metrics.json" in tree_files(repo, next(iter(exp_refs(repo))))
    write(repo / "metrics.json", '{"acc": 0.9}')  # a later local run's, git-ignored
    proc = run_tether(repo, "apply", "scored")
    assert proc.returncode == 4, proc.stderr
    assert "git-ignored):\n  metrics.json" in proc.stderr
    assert "commit or stash" not in proc.stderr
    assert "move those files away first, or pass --force" in proc.stderr
    assert (repo / "metrics.json").read_text() == '{"acc": 0.9}'
    assert run_tether(repo, "apply", "--force", "scored").returncode == 0
    assert (repo / "metrics.json").read_text() == '{"acc": 0.5}'


def test_apply_refuses_to_clobber_uncommitted_changes(project: Path) -> None:
    write(project / "a.txt", "my edit\n")
    write(project / "c.txt", "my edit of c\n")
    write(project / "new" / "d.txt", "my own d\n")
    write(project / "b.txt", "unrelated edit\n")  # restored too: the experiment has base b
    write(project / "scratch.txt", "not in the experiment\n")
    proc = run_tether(project, "apply", "exp")
    assert proc.returncode == 4  # the work tree's state, like git's own refusals
    listing = "\n  a.txt\n  b.txt\n  c.txt\nand files git does not track (untracked or " \
        "git-ignored):\n  new/d.txt\n"
    assert f"would overwrite uncommitted changes in:{listing}" in proc.stderr
    assert "commit or stash the changes and move those files away first" in proc.stderr
    assert "--force" in proc.stderr
    assert (project / "a.txt").read_text() == "my edit\n"  # nothing was written
    assert (project / "c.txt").exists()

    forced = run_tether(project, "apply", "--force", "exp")
    assert forced.returncode == 0, forced.stderr
    assert (project / "a.txt").read_text() == "exp a\n"
    assert (project / "new" / "d.txt").read_text() == "d\n"
    assert not (project / "c.txt").exists()
    assert (project / "b.txt").read_text() == "base b\n"
    assert (project / "scratch.txt").read_text() == "not in the experiment\n"


def test_apply_accepts_changes_that_already_match(project: Path) -> None:
    write(project / "a.txt", "exp a\n")  # uncommitted, but what the experiment has
    proc = run_tether(project, "apply", "exp")
    assert proc.returncode == 0, proc.stderr
    assert "a.txt" not in proc.stdout


def test_apply_keeps_the_executable_bit(project: Path) -> None:
    write(project / "tool.sh", "#!/bin/sh\necho hi\n").chmod(0o755)
    record(project, "tooled")
    (project / "tool.sh").unlink()
    assert run_tether(project, "apply", "tooled").returncode == 0
    assert (project / "tool.sh").stat().st_mode & 0o111


# ----------------------------------------------------------------------------- branch


def test_branch_at_the_experiment_commit(project: Path) -> None:
    head = git(project, "rev-parse", "HEAD")
    proc = run_tether(project, "branch", "exp", "try-exp")
    assert proc.returncode == 0, proc.stderr
    commit = resolve_experiment(Git(project), "exp").commit
    assert git(project, "rev-parse", "refs/heads/try-exp") == commit
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "symbolic-ref", "HEAD") == "refs/heads/main"
    again = run_tether(project, "branch", "exp", "try-exp")
    assert again.returncode == 5 and "already exists" in again.stderr
    bad = run_tether(project, "branch", "exp", "bad..name")
    assert bad.returncode == 2 and "not a valid branch name" in bad.stderr


# ----------------------------------------------------------------------------- rename


def test_rename_moves_the_ref(project: Path) -> None:
    before = exp_refs(project)
    proc = run_tether(project, "rename", "exp", "better-name")
    assert proc.returncode == 0, proc.stderr
    after = exp_refs(project)
    (old_ref, commit), = before.items()
    new_ref = old_ref.rsplit("/", 1)[0] + "/better-name"
    assert after == {new_ref: commit}
    shown = json.loads(run_tether(project, "show", "--json").stdout)
    assert [e["name"] for e in shown] == ["better-name"]


def test_rename_collision_and_invalid_name(project: Path) -> None:
    record(project, "other")
    before = exp_refs(project)
    proc = run_tether(project, "rename", "exp", "other")
    assert proc.returncode == 5
    assert "'other' is already used" in proc.stderr
    invalid = run_tether(project, "rename", "exp", "no/slashes")
    assert invalid.returncode == 5 and "invalid experiment name" in invalid.stderr
    assert exp_refs(project) == before


# ----------------------------------------------------------------------------- remove


@pytest.fixture
def mixed(repo: Path) -> Path:
    record(repo, "ok-one")
    record(repo, "ok-two")
    record(repo, "broken", "raise SystemExit(3)")
    return repo


def names(root: Path) -> set[str]:
    return {ref.rsplit("/", 1)[1] for ref in exp_refs(root)}


def test_remove_dry_changes_nothing(mixed: Path) -> None:
    before = exp_refs(mixed)
    proc = run_tether(mixed, "remove", "--dry", "ok-one", "broken")
    assert proc.returncode == 0, proc.stderr
    assert "would remove ok-one" in proc.stdout and "would remove broken" in proc.stdout
    failed = run_tether(mixed, "remove", "--dry", "--failed")
    assert failed.stdout.startswith("would remove broken") and "ok-" not in failed.stdout
    assert exp_refs(mixed) == before


def test_remove_failed(mixed: Path) -> None:
    proc = run_tether(mixed, "remove", "--failed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("removed broken  (failed,")
    assert names(mixed) == {"ok-one", "ok-two"}


def test_remove_named_and_older_than(mixed: Path) -> None:
    assert run_tether(mixed, "remove", "--older-than", "30d").stdout == "nothing to remove\n"
    proc = run_tether(mixed, "remove", "ok-one", "broken")
    assert proc.returncode == 0, proc.stderr
    assert names(mixed) == {"ok-two"}
    git_ = Git(mixed)
    later = time.time() + 3600
    chosen = select_for_removal(git_, [], older_than=1800, now=later)
    assert [e.ref.name for e in chosen] == ["ok-two"]
    assert select_for_removal(git_, [], older_than=7200, now=later) == []


def test_remove_usage_errors(mixed: Path) -> None:
    assert run_tether(mixed, "remove").returncode == 2
    assert run_tether(mixed, "remove", "ok-one", "--failed").returncode == 2
    bad = run_tether(mixed, "remove", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than 'soon'" in bad.stderr
    unknown = run_tether(mixed, "remove", "ok-one", "nobody")
    assert unknown.returncode == 5
    assert names(mixed) == {"ok-one", "ok-two", "broken"}


def test_remove_is_all_or_nothing(mixed: Path) -> None:
    git_ = Git(mixed)
    chosen = with_records(git_, [resolve_experiment(git_, n) for n in ("ok-one", "ok-two")])
    assert run_tether(mixed, "rename", "ok-two", "moved").returncode == 0
    with pytest.raises(ExperimentError, match="nothing removed"):
        remove_experiments(git_, chosen)
    assert names(mixed) == {"ok-one", "moved", "broken"}
