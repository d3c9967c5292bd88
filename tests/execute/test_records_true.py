"""A record holds only what its run produced (prepare → train → evaluate, failing variants)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, run_tether, write
from execute.project import make_project
from helpers import record_of, records, repo_state, tree_files

UNTOUCHED = ("head", "symbolic", "branches", "index", "staged")


def _untouched(before: dict[str, str], after: dict[str, str]) -> None:
    for key in UNTOUCHED:
        assert before[key] == after[key], key


def _ref_of(root: Path, name: str) -> str:
    out = git(root, "for-each-ref", "--format=%(refname)", f"refs/tether/exps/*/{name}")
    assert out, name
    return out


def test_failed_run_is_recorded_without_the_previous_runs_metrics(repo: Path) -> None:
    make_project(repo)
    good = run_tether(repo, "run", "-n", "good")
    assert good.returncode == 0, good.stderr
    assert records(repo)[-1]["metrics"] == {"loss": 0.75, "acc": 0.75}
    before = repo_state(repo)

    bad = run_tether(repo, "run", "-n", "bad", "-S", "train.min_split=-1")
    assert bad.returncode == 1, bad.stderr
    record = record_of(repo, _ref_of(repo, "bad"))
    assert record["status"] == "failed"
    assert {s["name"]: s["status"] for s in record["stages"]} == {
        "prepare": "skipped", "train": "failed", "evaluate": "not_run"}
    # Nothing of the good run's results: train failed, evaluate never ran.
    assert record["metrics"] == {}
    assert record["steps"] == {}
    assert "eval/metrics.json" not in tree_files(repo, _ref_of(repo, "bad"))
    assert "train_metrics.json" not in tree_files(repo, _ref_of(repo, "bad"))
    # The failed stage's earlier outputs were moved out of the way, not left as if current.
    assert not (repo / "model.bin").exists()
    kept = repo / ".tether" / "runs" / record["id"] / "displaced" / "train" / "model.bin"
    assert kept.read_bytes().startswith(b"model lr=0.5")
    _untouched(before, repo_state(repo))

    # The next good run is complete again and reuses nothing stale.
    again = run_tether(repo, "run", "-n", "again", "-S", "train.min_split=2")
    assert again.returncode == 0, again.stderr
    assert record_of(repo, _ref_of(repo, "again"))["metrics"] == {"loss": 0.75, "acc": 0.75}


def test_a_stage_that_fails_after_writing_files_contributes_nothing(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "good").returncode == 0
    proc = run_tether(repo, "run", "-n", "crash", "-S", "evaluate.fail=true",
                      "-S", "train.lr=0.9")
    assert proc.returncode == 1, proc.stderr
    record = record_of(repo, _ref_of(repo, "crash"))
    assert record["status"] == "failed"
    # train succeeded in this run: its loss is this run's; evaluate failed: no acc,
    # although the good run's eval/metrics.json was in the output directory before.
    assert record["metrics"] == {"loss": 0.55}
    assert "eval/plots/roc.csv" not in record["steps"]
    assert not (repo / "eval" / "metrics.json").exists()
    stages = {s["name"]: s for s in record["stages"]}
    assert stages["evaluate"]["outs"] == {}


def test_skipped_unchanged_stages_contribute_their_current_metrics(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "first").returncode == 0
    proc = run_tether(repo, "run", "-n", "second")
    assert proc.returncode == 0, proc.stderr
    record = record_of(repo, _ref_of(repo, "second"))
    assert [s["status"] for s in record["stages"]] == ["skipped"] * 3
    # Unchanged stages' results are still the workspace's results (as in DVC).
    assert record["metrics"] == {"loss": 0.75, "acc": 0.75}


def test_best_values_ignore_runs_that_did_not_succeed(repo: Path) -> None:
    from tether.experiments.explore import show_experiments

    make_project(repo)
    assert run_tether(repo, "run", "-n", "good").returncode == 0
    # train's loss is better here (0.55 < 0.75), but the run failed in evaluate.
    proc = run_tether(repo, "run", "-n", "crash", "-S", "evaluate.fail=true",
                      "-S", "train.lr=0.9")
    assert proc.returncode == 1
    result = show_experiments(repo)
    assert {e.name: e.metrics.get("loss") for e in result.experiments} == {
        "good": 0.75, "crash": 0.55}
    assert result.best == {"loss": 0.75, "acc": 0.75}
    assert "crash" in run_tether(repo, "show").stdout


def test_displaced_files_are_put_back_when_the_stage_never_started(tmp_path: Path) -> None:
    from tether.execute.displace import Displaced

    ws = tmp_path / "ws"
    write(ws / "eval" / "metrics.json", '{"acc": 1}')
    write(ws / "model.bin", "weights")
    aside = Displaced(ws, ["eval", "eval/metrics.json", "model.bin", "absent"],
                      tmp_path / "run" / "displaced" / "evaluate")
    aside.move()
    assert not (ws / "eval").exists() and not (ws / "model.bin").exists()
    aside.put_back()
    assert json.loads((ws / "eval" / "metrics.json").read_text()) == {"acc": 1}
    assert (ws / "model.bin").read_text() == "weights"
    assert not (tmp_path / "run" / "displaced" / "evaluate").exists()


def test_an_invalid_metrics_file_fails_the_stage_and_the_run_is_recorded(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "good").returncode == 0
    lock_before = (repo / "tether.lock").read_text()
    before = repo_state(repo)
    proc = run_tether(repo, "run", "-n", "garbage", "-S", "evaluate.fail=garbage")
    assert proc.returncode == 1, proc.stderr
    assert "eval/metrics.json:1:2: invalid JSON" in proc.stderr
    record = record_of(repo, _ref_of(repo, "garbage"))
    assert record["status"] == "failed"
    evaluate = record["stages"][-1]
    assert evaluate["status"] == "failed" and evaluate["exit_code"] == 0
    assert "invalid JSON" in evaluate["error"]
    assert record["metrics"] == {"loss": 0.75}  # train's, skipped as unchanged
    # The lock does not claim evaluate is done with these params: the next run retries it.
    lock = json.loads((repo / "tether.lock").read_text())
    assert lock["stages"]["evaluate"] == json.loads(lock_before)["stages"]["evaluate"]
    dry = run_tether(repo, "run", "--dry", "-S", "evaluate.fail=garbage")
    assert "run   evaluate" in dry.stdout, dry.stdout
    _untouched(before, repo_state(repo))


def test_a_bare_command_always_runs_even_after_its_script_changed(repo: Path) -> None:
    make_project(repo)
    write(repo / "t2.py", "import json\njson.dump({'v': 1}, open('metrics.json', 'w'))\n")
    write(repo / ".gitignore", (repo / ".gitignore").read_text() + "metrics.json\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "t2")
    lock_before = (repo / "tether.lock").read_bytes() if (repo / "tether.lock").exists() else None
    first = run_tether(repo, "run", "-n", "one", "--", "python", "t2.py")
    assert first.returncode == 0, first.stderr
    write(repo / "t2.py", "import json\njson.dump({'v': 2}, open('metrics.json', 'w'))\n")
    git(repo, "commit", "-q", "-am", "t2 v2")
    before = repo_state(repo)
    second = run_tether(repo, "run", "-n", "two", "--", "python", "t2.py")
    assert second.returncode == 0, second.stderr
    assert "unchanged" not in second.stderr
    record = record_of(repo, _ref_of(repo, "two"))
    assert record["stages"][0]["status"] == "success"
    assert record["stages"][0]["started_at"] is not None
    assert record["metrics"] == {"v": 2}
    # Not even the run-cache stands in for it: it declares no dependencies.
    third = run_tether(repo, "run", "-n", "three", "--", "python", "t2.py")
    assert "restored" not in third.stderr and record_of(
        repo, _ref_of(repo, "three"))["stages"][0]["restored_from"] is None
    # A bare command leaves the project's tether.lock alone.
    after = (repo / "tether.lock").read_bytes() if (repo / "tether.lock").exists() else None
    assert after == lock_before
    _untouched(before, repo_state(repo))


NAN_SCRIPT = """\
import json, tether
open("metrics.json", "w").write('{"loss": NaN, "up": Infinity, "down": -Infinity, "acc": 0.5}')
tether.log(step=0, loss=float("nan"))
tether.summary(grad=float("inf"))
"""


def test_non_finite_metrics_are_kept_as_strings(repo: Path) -> None:
    write(repo / "nan.py", NAN_SCRIPT)
    write(repo / ".gitignore", "metrics.json\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nan")
    proc = run_tether(repo, "run", "-n", "diverged", "--", "python", "nan.py")
    assert proc.returncode == 0, proc.stderr
    record = records(repo)[-1]
    assert record["metrics"] == {"loss": "NaN", "up": "Infinity", "down": "-Infinity",
                                 "acc": 0.5, "grad": "Infinity"}
    assert [{k: v for k, v in row.items() if k != "ts"} for row in record["steps"]["run"]] == [
        {"step": 0, "loss": "NaN"}]
    shown = run_tether(repo, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["metrics"]["loss"] == "NaN"
    table = run_tether(repo, "show")
    assert "NaN" in table.stdout and "-Infinity" in table.stdout
    filtered = run_tether(repo, "show", "--json", "--filter", "metrics.loss > 1")
    assert filtered.returncode == 0 and json.loads(filtered.stdout) == []
    assert run_tether(repo, "diff", "diverged", "workspace").returncode == 0


def test_diff_does_not_judge_a_failed_runs_metrics(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "good").returncode == 0
    assert run_tether(repo, "run", "-n", "crash", "-S", "evaluate.fail=true",
                      "-S", "train.lr=0.9").returncode == 1
    proc = run_tether(repo, "diff", "crash", "good", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["key"]: row for row in json.loads(proc.stdout)["metrics"]}
    assert rows["loss"]["a"] == 0.55 and rows["loss"]["mark"] == "changed"  # not "better"
    assert rows["acc"]["mark"] == "only-b"
    text = run_tether(repo, "diff", "crash", "good").stdout
    assert ", failed)" in text.splitlines()[0]
    judged = run_tether(repo, "diff", "good", "crash", "--json")
    assert {r["key"]: r["mark"] for r in json.loads(judged.stdout)["metrics"]}["loss"] == "changed"
