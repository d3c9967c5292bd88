"""Naming an experiment: by name, commit prefix, BASELINE/NAME or full ref."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs
from tether.errors import ExperimentError
from tether.experiments.resolve import resolve_experiment
from tether.gitstore.git import Git


def record(root: Path, name: str) -> None:
    proc = run_tether(root, "run", "-q", "-n", name, "--", "python", "-c", "print('hi')")
    assert proc.returncode == 0, proc.stderr


def new_commit(root: Path, text: str) -> str:
    write(root / "code.txt", text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", text)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def two_baselines(repo: Path) -> tuple[str, str]:
    """`shared` under both baselines, `older` only under the first; HEAD is the second."""
    first = git(repo, "rev-parse", "HEAD")
    record(repo, "shared")
    record(repo, "older")
    second = new_commit(repo, "v2")
    record(repo, "shared")
    return first, second


def test_name_under_head_wins(repo: Path, two_baselines: tuple[str, str]) -> None:
    _, second = two_baselines
    exp = resolve_experiment(Git(repo), "shared")
    assert exp.baseline == second
    assert exp.ref == f"refs/tether/exps/{second}/shared"


def test_name_unique_elsewhere_is_found(repo: Path, two_baselines: tuple[str, str]) -> None:
    first, _ = two_baselines
    assert resolve_experiment(Git(repo), "older").baseline == first


def test_name_ambiguous_outside_head_lists_candidates(
    repo: Path, two_baselines: tuple[str, str]
) -> None:
    first, second = two_baselines
    new_commit(repo, "v3")  # HEAD now has no experiment named `shared`
    with pytest.raises(ExperimentError) as caught:
        resolve_experiment(Git(repo), "shared")
    message = str(caught.value)
    assert "matches 2 experiments" in message
    assert f"refs/tether/exps/{first}/shared" in message
    assert f"refs/tether/exps/{second}/shared" in message
    assert "created " in message
    proc = run_tether(repo, "branch", "shared", "x")
    assert proc.returncode == 5
    assert "matches 2 experiments" in proc.stderr


def test_baseline_prefix_and_name(repo: Path, two_baselines: tuple[str, str]) -> None:
    first, _ = two_baselines
    new_commit(repo, "v3")
    assert resolve_experiment(Git(repo), f"{first[:7]}/shared").baseline == first


def test_commit_prefix_and_full_ref(repo: Path, two_baselines: tuple[str, str]) -> None:
    refs = exp_refs(repo)
    for ref, commit in refs.items():
        assert resolve_experiment(Git(repo), ref).commit == commit
        assert resolve_experiment(Git(repo), commit[:12]).ref == ref
        assert resolve_experiment(Git(repo), commit.upper()[:12]).ref == ref


def test_unknown_name_suggests_close_ones(repo: Path, two_baselines: tuple[str, str]) -> None:
    with pytest.raises(ExperimentError) as caught:
        resolve_experiment(Git(repo), "sharde")
    assert "no experiment named 'sharde'" in str(caught.value)
    assert "did you mean 'shared'" in str(caught.value)
    proc = run_tether(repo, "logs", "oldr")
    assert proc.returncode == 5
    assert "did you mean 'older'" in proc.stderr


def test_unknown_ref_and_short_prefix(repo: Path, two_baselines: tuple[str, str]) -> None:
    with pytest.raises(ExperimentError, match="no experiment named"):
        resolve_experiment(Git(repo), "refs/tether/exps/abc/shared")
    with pytest.raises(ExperimentError, match="not a tether ref"):
        resolve_experiment(Git(repo), "refs/heads/main")
    commit = next(iter(exp_refs(repo).values()))
    with pytest.raises(ExperimentError):
        resolve_experiment(Git(repo), commit[:3])  # shorter than 4 hex digits


def test_no_experiments_at_all(repo: Path) -> None:
    with pytest.raises(ExperimentError) as caught:
        resolve_experiment(Git(repo), "anything")
    assert "no experiment is recorded yet" in str(caught.value)
