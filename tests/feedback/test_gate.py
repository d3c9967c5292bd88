"""`tether gate`: verdicts per metric against the last main build, found across history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from feedback.fakes import commit, fake_experiment
from tether.errors import EXIT_GIT_STATE, EXIT_NO_BASELINE, EXIT_REGRESSED

MAIN = {"acc": 0.9, "loss": 0.3, "latency": 10.0, "f1_rare": 0.5, "size": 7, "gone": 1.0}


def gate(root: Path, *args: str, code: int = 0) -> dict[str, Any]:
    proc = run_tether(root, "gate", "--json", *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def verdicts(data: dict[str, Any]) -> dict[str, str]:
    return {m["metric"]: m["verdict"] for m in data["metrics"]}


@pytest.fixture
def project(repo: Path) -> Path:
    """main has a build; HEAD is a feature branch one commit ahead."""
    fake_experiment(repo, "base", MAIN)
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "feature work")
    return repo


def test_verdict_for_every_case(project: Path) -> None:
    fake_experiment(project, "base", {
        "acc": 0.891,   # exactly 1% lower: within tolerance (float noise included)
        "loss": 0.2,    # lower is better
        "latency": 99.0,  # much worse, but gate: false
        "size": 8,      # no rule: changed, reported only
        "fresh": 1.0,   # new
        # f1_rare missing (allowed), gone missing (no rule: reported only)
    })
    data = gate(project)
    assert data["verdict"] == "passed"
    assert verdicts(data) == {"acc": "same", "loss": "better", "latency": "regressed",
                              "size": "changed", "fresh": "new", "f1_rare": "missing",
                              "gone": "missing"}
    by_key = {m["metric"]: m for m in data["metrics"]}
    assert by_key["latency"]["gated"] is False and by_key["latency"]["failing"] is False
    assert by_key["loss"]["value"] == 0.2 and by_key["loss"]["baseline"] == 0.3
    assert by_key["loss"]["change"] == pytest.approx(-0.1)
    assert data["main_build"]["name"] == "base"
    assert data["main_build"]["distance"] == 0  # main's tip itself


@pytest.mark.parametrize(("acc", "expected", "code"), [
    (2.0, "same", 0),
    (1.5, "same", 0),        # 25% lower: the tolerance's edge
    (1.4999, "warn", 0),     # just past it: warn
    (1.0, "warn", 0),        # 50% lower: the warn band's edge
    (0.9999, "regressed", EXIT_REGRESSED),
    (2.6, "better", 0),
])
def test_tolerance_and_warn_edges(repo: Path, acc: float, expected: str, code: int) -> None:
    rules = {"acc": {"direction": "max", "tolerance": {"kind": "rel", "value": 0.25},
                     "warn": {"kind": "rel", "value": 0.5}}}
    fake_experiment(repo, "run", {"acc": 2.0}, rules=rules)
    commit(repo, "next")
    fake_experiment(repo, "run", {"acc": acc}, rules=rules)
    data = gate(repo, code=code)
    assert verdicts(data) == {"acc": expected}
    assert data["verdict"] == {"same": "passed", "better": "passed", "warn": "warned",
                               "regressed": "regressed"}[expected]


def test_absolute_tolerance_edge(repo: Path) -> None:
    rules = {"loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.25}}}
    fake_experiment(repo, "run", {"loss": 1.0}, rules=rules)
    commit(repo, "next")
    fake_experiment(repo, "run", {"loss": 1.25}, rules=rules)
    assert verdicts(gate(repo)) == {"loss": "same"}
    fake_experiment(repo, "run2", {"loss": 1.2501}, rules=rules)
    assert verdicts(gate(repo, "run2", code=EXIT_REGRESSED)) == {"loss": "regressed"}


def test_regression_fails_with_its_own_exit_code(project: Path) -> None:
    fake_experiment(project, "base", {**MAIN, "acc": 0.5})
    proc = run_tether(project, "gate")
    assert proc.returncode == EXIT_REGRESSED
    assert "acc" in proc.stdout and "REGRESSED" in proc.stdout
    assert "regressed against the main build: acc (regressed)" in proc.stderr


def test_missing_gated_metric_is_a_regression(project: Path) -> None:
    metrics = dict(MAIN)
    del metrics["loss"]
    fake_experiment(project, "base", metrics)
    data = gate(project, code=EXIT_REGRESSED)
    assert verdicts(data)["loss"] == "missing"
    assert {m["metric"] for m in data["metrics"] if m["failing"]} == {"loss"}


def test_nan_where_main_had_a_number_is_a_regression(project: Path) -> None:
    fake_experiment(project, "base", {**MAIN, "loss": "NaN"})
    assert verdicts(gate(project, code=EXIT_REGRESSED))["loss"] == "regressed"


def test_failed_run_fails_the_gate(project: Path) -> None:
    fake_experiment(project, "base", MAIN, status="failed")
    proc = run_tether(project, "gate")
    assert proc.returncode == EXIT_REGRESSED
    assert "did not succeed (failed)" in proc.stderr


def test_main_build_found_across_commits_without_builds(repo: Path) -> None:
    fake_experiment(repo, "old", {"acc": 0.1})
    commit(repo, "built")
    fake_experiment(repo, "other-name", {"acc": 0.8})
    fake_experiment(repo, "base", {"acc": 0.7})   # same name as the gated run: preferred
    fake_experiment(repo, "newest", {"acc": 0.6})
    fake_experiment(repo, "broken", {"acc": 0.99}, status="failed")  # never a main build
    built = git(repo, "rev-parse", "HEAD")
    for i in range(5):
        commit(repo, f"no build {i}")
    fake_experiment(repo, "failed-only", {"acc": 0.0}, status="failed")  # not successful
    commit(repo, "no build either")
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "change")
    fake_experiment(repo, "base", {"acc": 0.7})
    data = gate(repo)
    assert data["main_build"]["name"] == "base"
    assert data["main_build"]["baseline"] == built
    assert data["main_build"]["distance"] == 6
    # Without a build of the same name: the newest successful one.
    fake_experiment(repo, "unnamed", {"acc": 0.6})
    assert gate(repo, "unnamed")["main_build"]["name"] == "newest"


def test_merged_branches_are_not_walked(repo: Path) -> None:
    """First-parent history only: a build on a merged side branch is not a main build."""
    git(repo, "switch", "-q", "-c", "side")
    commit(repo, "side work")
    fake_experiment(repo, "base", {"acc": 0.1})
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "change")
    fake_experiment(repo, "base", {"acc": 0.5})
    proc = run_tether(repo, "gate")
    assert proc.returncode == EXIT_NO_BASELINE, proc.stderr


def test_no_main_build(repo: Path) -> None:
    commit(repo, "feature")
    fake_experiment(repo, "base", {"acc": 0.5})
    proc = run_tether(repo, "gate")
    assert proc.returncode == EXIT_NO_BASELINE
    assert "no main build found" in proc.stderr
    proc = run_tether(repo, "gate", "--allow-no-baseline")
    assert proc.returncode == 0
    assert "warning: no main build found" in proc.stderr
    assert "NO-BASELINE" in proc.stdout


def test_depth_bounds_the_walk(repo: Path) -> None:
    fake_experiment(repo, "base", MAIN)
    commit(repo, "one")
    commit(repo, "two")
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "change")
    fake_experiment(repo, "base", MAIN)
    write(repo / ".tether" / "config.yaml", "feedback: {depth: 2}\n")
    assert run_tether(repo, "gate").returncode == EXIT_NO_BASELINE
    write(repo / ".tether" / "config.yaml", "feedback: {depth: 3}\n")
    assert run_tether(repo, "gate").returncode == 0


def test_against_and_feedback_main(project: Path) -> None:
    git(project, "branch", "-m", "main", "trunk")
    fake_experiment(project, "base", MAIN)
    proc = run_tether(project, "gate")
    assert proc.returncode == EXIT_GIT_STATE
    assert "'main' names no commit" in proc.stderr
    assert gate(project, "--against", "trunk")["main_build"]["name"] == "base"
    write(project / ".tether" / "config.yaml", "feedback:\n  main: trunk\n")
    assert gate(project)["searched"]["rev"] == "trunk"


def test_gate_on_main_skips_its_own_commit(repo: Path) -> None:
    fake_experiment(repo, "base", {"acc": 0.9})
    commit(repo, "next on main")
    fake_experiment(repo, "base", {"acc": 0.5})
    fake_experiment(repo, "sibling", {"acc": 0.1})
    data = gate(repo, "base", code=EXIT_REGRESSED)
    assert data["main_build"]["distance"] == 1


def test_table_and_markdown(project: Path) -> None:
    fake_experiment(project, "base", {**MAIN, "acc": 0.8})
    text = run_tether(project, "gate").stdout
    assert "metric" in text and "▼ REGRESSED" in text and "(not gated)" not in text.split(
        "acc")[1].split("\n")[0]
    md = run_tether(project, "gate", "--md").stdout
    assert md.startswith("**base") and "| metric | main | this |" in md


def test_spec_rules_validate_with_file_and_line(repo: Path) -> None:
    write(repo / "tether.yaml", """\
stages:
  train: {cmd: python train.py}
metrics:
  acc: {direction: max, tolerance: 2%, warn: 1%}
  loss: {direction: min, gate: maybe}
  f1: {direction: max, warn: lots}
""")
    proc = run_tether(repo, "spec")
    assert proc.returncode == 3
    assert "tether.yaml:4: metrics.acc.warn: expected a band wider than the tolerance" \
        in proc.stderr
    assert "tether.yaml:5: metrics.loss.gate: expected true or false, found 'maybe'" \
        in proc.stderr
    assert "tether.yaml:6: metrics.f1.warn:" in proc.stderr
    write(repo / "tether.yaml", """\
stages:
  train: {cmd: python train.py}
metrics:
  acc: {direction: max, tolerance: 1%, warn: 5%, allow_missing: true}
  loss: {direction: min, gate: false}
""")
    proc = run_tether(repo, "spec", "--json")
    assert proc.returncode == 0, proc.stderr
    rules = json.loads(proc.stdout)["metrics"]
    assert rules["acc"]["warn"] == {"kind": "rel", "value": 0.05}
    assert rules["acc"]["allow_missing"] is True and rules["loss"]["gate"] is False



@pytest.fixture
def origin(repo: Path, tmp_path: Path) -> Path:
    """A bare remote whose main has an old build, a newer build, then 3 commits without."""
    fake_experiment(repo, "base", {**MAIN, "acc": 0.1})
    commit(repo, "built")
    fake_experiment(repo, "base", MAIN)
    for i in range(3):
        commit(repo, f"after {i}")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main", "refs/tether/*:refs/tether/*")
    return bare


def _feature_clone(origin: Path, tmp_path: Path, *clone_args: str) -> Path:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", *clone_args, f"file://{origin}", str(clone))
    git(clone, "switch", "-q", "-c", "feature")
    commit(clone, "change")
    fake_experiment(clone, "base", {**MAIN, "acc": 0.95})
    return clone


def _tether_refs(root: Path) -> list[str]:
    return git(root, "for-each-ref", "--format=%(refname)", "refs/tether/").split()


def test_refs_fetched_on_demand_only_for_the_commit_needed(origin: Path, tmp_path: Path) -> None:
    clone = _feature_clone(origin, tmp_path)
    assert len(_tether_refs(clone)) == 1  # its own experiment only
    built = git(clone, "rev-parse", "origin/main~3")
    data = gate(clone)
    assert data["verdict"] == "passed"
    assert data["main_build"]["baseline"] == built
    assert data["main_build"]["fetched_baselines"] == 1
    refs = _tether_refs(clone)
    assert f"refs/tether/exps/{built}/base" in refs
    assert len(refs) == 2  # the older build's refs were not fetched
    assert verdicts(data)["acc"] == "better"
    # --no-fetch in a fresh clone: nothing here to compare with.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", f"file://{origin}", str(other))
    fake_experiment(other, "base", MAIN)
    assert run_tether(other, "gate", "--no-fetch", "--against", "HEAD~1").returncode \
        == EXIT_NO_BASELINE


def test_shallow_clone_is_deepened(origin: Path, tmp_path: Path) -> None:
    clone = _feature_clone(origin, tmp_path, "--depth=1", "--no-single-branch")
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    data = gate(clone)
    assert data["main_build"]["distance"] == 3
    assert any("deepened the shallow clone" in note for note in data["searched"]["notes"])


def test_shallow_clone_without_fetch_says_what_to_run(origin: Path, tmp_path: Path) -> None:
    clone = _feature_clone(origin, tmp_path, "--depth=1", "--no-single-branch")
    proc = run_tether(clone, "gate", "--no-fetch")
    assert proc.returncode == EXIT_GIT_STATE
    assert "this shallow clone ends 1 commits down main's history" in proc.stderr
    assert "git fetch --deepen=199 origin" in proc.stderr


def test_main_branch_fetched_when_absent(origin: Path, tmp_path: Path) -> None:
    """A CI checkout of only the PR's commit: main is fetched from the remote."""
    clone = tmp_path / "pr"
    git(tmp_path, "init", "-q", str(clone))
    git(clone, "remote", "add", "origin", f"file://{origin}")
    git(clone, "fetch", "-q", "--depth=1", "origin", "main")
    git(clone, "switch", "-q", "-c", "feature", "FETCH_HEAD")
    commit(clone, "change")
    fake_experiment(clone, "base", MAIN)
    data = gate(clone)
    assert data["verdict"] == "passed"
    assert data["main_build"]["distance"] == 3


def test_python_dsl_declares_gate_keys(repo: Path) -> None:
    write(repo / "tetherfile.py", """\
from tether.dsl import Pipeline, stage
pipeline = Pipeline()
pipeline.add(stage("train", cmd="python train.py"))
pipeline.metric("acc", "max", "1%", warn="3%", allow_missing=True)
pipeline.metric("latency", "min", gate=False)
""")
    from tether.spec.loader import load_pipeline

    rules = load_pipeline(repo).to_json()["metrics"]
    assert rules["acc"] == {"direction": "max", "tolerance": {"kind": "rel", "value": 0.01},
                            "warn": {"kind": "rel", "value": 0.03}, "allow_missing": True}
    assert rules["latency"]["gate"] is False


def test_unknown_experiment(project: Path) -> None:
    proc = run_tether(project, "gate", "nope")
    assert proc.returncode == 5
    assert "no experiment named 'nope'" in proc.stderr


def test_nothing_recorded_under_head(project: Path) -> None:
    proc = run_tether(project, "gate")
    assert proc.returncode == 5
    assert "no experiment is recorded against HEAD" in proc.stderr


def test_unreachable_remote_is_a_warning(repo: Path, tmp_path: Path) -> None:
    fake_experiment(repo, "base", MAIN)
    commit(repo, "no build here")  # so the walk asks the remote about this commit
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "change")
    fake_experiment(repo, "base", MAIN)
    git(repo, "remote", "add", "origin", str(tmp_path / "gone.git"))
    proc = run_tether(repo, "gate")
    assert proc.returncode == 0, proc.stderr
    assert "tether: warning: could not list experiments on origin" in proc.stderr
