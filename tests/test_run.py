"""`tether run` end to end: real git repositories, real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, run_tether, write
from helpers import exp_refs, only_record, record_of, records, repo_state, tree_files

TRAIN = """\
import json, sys
import tether
p = tether.params()
for step in range(3):
    tether.log(step=step, loss=1.0 / (step + 1) * p["train"]["lr"])
print("training with lr", p["train"]["lr"])
json.dump({"acc": 0.5 + p["train"]["lr"], "nested": {"f1": 0.25}}, open("metrics.json", "w"))
open("model.bin", "w").write("weights")
"""

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py]
    params: [prepare]
    outs: [data.txt]
  train:
    cmd: python train.py
    deps: [train.py, data.txt]
    params: [train.lr]
    outs: [model.bin]
    metrics: [metrics.json]
metrics:
  acc: {direction: max, tolerance: 1%}
"""


def make_project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(
        root / "params.yaml", "prepare:\n  n: 3\ntrain:\n  lr: 0.1 # learning rate\n  epochs: 2\n"
    )
    write(
        root / "prepare.py",
        "import tether\nopen('data.txt','w').write(str(tether.params()['prepare']['n']))\n",
    )
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "data.txt\nmodel.bin\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")


def test_pipeline_runs_and_records_one_commit(repo: Path) -> None:
    make_project(repo)
    before = repo_state(repo)
    proc = run_tether(repo, "run", "-n", "first", "-m", "hello")
    assert proc.returncode == 0, proc.stderr
    assert "training with lr 0.1" in proc.stdout
    refs = exp_refs(repo)
    head = git(repo, "rev-parse", "HEAD")
    assert list(refs) == [f"refs/tether/exps/{head}/first"]
    commit = refs[f"refs/tether/exps/{head}/first"]
    assert git(repo, "rev-parse", f"{commit}^") == head
    record = record_of(repo, commit)
    assert record["schema"] == 1
    assert record["status"] == "success" and record["name"] == "first"
    assert record["message"] == "hello"
    assert record["baseline"] == head
    assert record["metrics"] == {"acc": 0.6, "nested.f1": 0.25}
    assert [s["name"] for s in record["stages"]] == ["prepare", "train"]
    assert all(s["status"] == "success" and s["exit_code"] == 0 for s in record["stages"])
    assert record["params"]["params.yaml"]["train"]["lr"] == 0.1
    assert [row["step"] for row in record["steps"]["train"]] == [0, 1, 2]
    train = record["stages"][1]
    assert "training with lr 0.1" in train["log"]["text"]
    assert train["deps"]["data.txt"].startswith("b3:")
    assert train["outs"]["model.bin"].startswith("b3:")
    assert train["params"] == {"train.lr": 0.1}
    assert record["environment"]["python"]["version"].startswith(f"{sys.version_info.major}.")
    files = tree_files(repo, commit)
    assert "metrics.json" in files and "tether.lock" in files and "params.yaml" in files
    assert ".tether/record.json" in files and ".tether/logs/train.log" in files
    assert "model.bin" not in files and "data.txt" not in files
    # Recording changed nothing the user owns except the lock file and outputs.
    after = repo_state(repo)
    assert {k: v for k, v in after.items() if k != "status"} == {
        k: v for k, v in before.items() if k != "status"
    }
    assert set(after["status"].split("\n")) - set(before["status"].split("\n")) <= {
        "?? metrics.json", "?? tether.lock", "",
    }


def test_recording_leaves_staged_changes_alone(repo: Path) -> None:
    make_project(repo)
    write(repo / "notes.txt", "staged work\n")
    git(repo, "add", "notes.txt")
    write(repo / "train.py", TRAIN + "# edited, unstaged\n")
    before = repo_state(repo)
    proc = run_tether(repo, "run", "-n", "dirty")
    assert proc.returncode == 0, proc.stderr
    after = repo_state(repo)
    for key in ("head", "symbolic", "branches", "index", "staged"):
        assert after[key] == before[key], key
    record = only_record(repo)
    assert record["code"]["dirty"] is True
    assert "# edited, unstaged" in record["code"]["diff"]
    ref = next(iter(exp_refs(repo)))
    assert "# edited, unstaged" in git(repo, "show", f"{ref}:train.py")


def test_skip_and_rerun_decisions(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run").returncode == 0
    status = run_tether(repo, "status")
    assert "skip  prepare: unchanged" in status.stdout
    assert "skip  train: unchanged" in status.stdout

    # A param only `train` reads: prepare stays skipped.
    proc = run_tether(repo, "run", "-S", "train.lr=0.2", "-n", "lr2")
    assert proc.returncode == 0, proc.stderr
    stages = {s["name"]: s for s in records(repo)[-1]["stages"]}
    assert stages["prepare"]["status"] == "skipped"
    assert stages["train"]["status"] == "success"
    assert stages["train"]["reasons"] == ["param train.lr changed"]
    # The effective params are in the workspace, exactly as recorded, comments kept.
    assert "lr: 0.2  # learning rate" in (repo / "params.yaml").read_text()

    # A param train does not declare changes nothing for it.
    dry = run_tether(repo, "run", "--dry", "-S", "train.epochs=5")
    assert "skip  train: unchanged" in dry.stdout

    # Editing an upstream dependency reruns prepare and everything downstream.
    write(repo / "prepare.py", (repo / "prepare.py").read_text() + "# edit\n")
    dry = run_tether(repo, "run", "--dry")
    assert "run   prepare: dependency prepare.py changed" in dry.stdout
    assert "run   train: upstream prepare will run" in dry.stdout

    # A changed command reruns that stage.
    git(repo, "checkout", "prepare.py")
    write(repo / "tether.yaml", SPEC.replace("cmd: python train.py", "cmd: python train.py --x"))
    dry = run_tether(repo, "status")
    assert "skip  prepare: unchanged" in dry.stdout
    assert "run   train: command changed" in dry.stdout

    # A missing output reruns its stage; --force runs everything.
    write(repo / "tether.yaml", SPEC)
    (repo / "model.bin").unlink()
    assert "train: output model.bin missing" in run_tether(repo, "status").stdout
    assert "run   prepare: --force" in run_tether(repo, "run", "--dry", "--force").stdout
    # --dry recorded nothing.
    assert len(exp_refs(repo)) == 2


def test_failed_stage_is_recorded_with_log_and_stops_downstream(repo: Path) -> None:
    make_project(repo)
    write(repo / "prepare.py", "import sys\nprint('about to fail')\nsys.exit(3)\n")
    proc = run_tether(repo, "run", "-n", "broken")
    assert proc.returncode == 1
    assert "stage 'prepare' failed (exit 3)" in proc.stderr
    record = only_record(repo)
    assert record["status"] == "failed" and record["exit_code"] == 3
    prepare, train = record["stages"]
    assert prepare["status"] == "failed" and prepare["exit_code"] == 3
    assert "about to fail" in prepare["log"]["text"]
    assert train["status"] == "not_run"
    assert not (repo / "tether.lock").exists()


def test_stalled_and_timeout_are_recorded(repo: Path) -> None:
    write(repo / "tether.yaml", """\
stages:
  quiet:
    cmd: python -c "print('hi', flush=True); import time; time.sleep(30)"
    stall_timeout: 1s
""")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "stall")
    proc = run_tether(repo, "run", "-n", "stall")
    assert proc.returncode == 125, proc.stderr
    record = only_record(repo)
    assert record["status"] == "stalled"
    assert "hi" in record["stages"][0]["log"]["text"]
    assert record["stages"][0]["duration"] < 20

    write(repo / "tether.yaml", """\
stages:
  slow:
    cmd: sh -c 'while true; do echo tick; sleep 0.1; done'
    timeout: 1s
""")
    proc = run_tether(repo, "run", "-n", "slow")
    assert proc.returncode == 124, proc.stderr
    assert records(repo)[-1]["status"] == "timeout"


def test_interrupted_run_is_recorded(repo: Path) -> None:
    write(repo / "tether.yaml", """\
stages:
  long:
    cmd: python -c "import time; print('started', flush=True); time.sleep(60)"
""")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "long")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "-n", "ctrl-c"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = only_record(repo)
    assert record["status"] == "interrupted"
    assert "started" in record["stages"][0]["log"]["text"]


def test_bare_command_records_metrics_and_api(repo: Path) -> None:
    script = write(repo / "job.py", """\
import json, sys, tether
tether.log(step=0, loss=0.5)
tether.log(step=1, loss=0.25)
tether.summary(best={"loss": 0.25})
json.dump({"acc": 0.9}, open("metrics.json", "w"))
print("args", sys.argv[1:])
""")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "job")
    proc = run_tether(repo, "run", "-n", "bare", "--", "python", script.name, "--flag", "x y")
    assert proc.returncode == 0, proc.stderr
    assert "args ['--flag', 'x y']" in proc.stdout
    record = only_record(repo)
    assert record["kind"] == "command"
    assert record["metrics"] == {"acc": 0.9, "best.loss": 0.25}
    assert [r["loss"] for r in record["steps"]["run"]] == [0.5, 0.25]
    assert record["stages"][0]["cmd"] == ["python job.py --flag 'x y'"]


def test_bare_command_failure_exit_code(repo: Path) -> None:
    proc = run_tether(repo, "run", "--", "sh", "-c", "echo oops >&2; exit 7")
    assert proc.returncode == 1
    record = only_record(repo)
    assert record["status"] == "failed" and record["exit_code"] == 7
    assert "oops" in record["stages"][0]["log"]["text"]


def test_secrets_never_recorded(repo: Path) -> None:
    secret = "AKIAFAKESECRETVALUE1234567890"
    write(repo / "leak.py", "import os\nprint('key is', os.environ['AWS_SECRET_ACCESS_KEY'])\n")
    write(repo / "tether.yaml", "stages:\n  leak:\n    cmd: python leak.py\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "leak")
    write(
        repo / "leak.py",
        f"import os\n# {secret}\nprint('key is', os.environ['AWS_SECRET_ACCESS_KEY'])\n",
    )
    proc = run_tether(repo, "run", "-n", "leak", env={"AWS_SECRET_ACCESS_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    record = only_record(repo)
    dumped = json.dumps(record)
    assert secret not in dumped
    assert "key is [redacted:AWS_SECRET_ACCESS_KEY]" in record["stages"][0]["log"]["text"]
    env_vars = record["environment"]["env_vars"]
    assert env_vars.get("AWS_SECRET_ACCESS_KEY") in (None, "[redacted:AWS_SECRET_ACCESS_KEY]")
    ref = next(iter(exp_refs(repo)))
    assert secret not in git(repo, "show", f"{ref}:.tether/logs/leak.log")
    for path in (repo / ".tether").rglob("*"):
        if path.is_file() and "statcache" not in path.name:
            assert secret.encode() not in path.read_bytes(), path


def test_name_conflict_and_invalid_name(repo: Path) -> None:
    assert run_tether(repo, "run", "-n", "same", "--", "true").returncode == 0
    refs = exp_refs(repo)
    proc = run_tether(repo, "run", "-n", "same", "--", "true")
    assert proc.returncode == 5
    assert "already used" in proc.stderr
    assert exp_refs(repo) == refs
    proc = run_tether(repo, "run", "-n", "bad/name", "--", "true")
    assert proc.returncode == 5 and "invalid experiment name" in proc.stderr


def test_generated_names_are_memorable_and_distinct(repo: Path) -> None:
    for _ in range(3):
        assert run_tether(repo, "run", "-q", "--", "true").returncode == 0
    names = [r["name"] for r in records(repo)]
    assert len(set(names)) == 3
    assert all(len(n.split("-")) >= 2 for n in names)


def test_temp_runs_in_isolated_worktree(repo: Path) -> None:
    make_project(repo)
    write(repo / "train.py", TRAIN.replace("training with", "TEMP training with"))
    before = repo_state(repo)
    proc = run_tether(repo, "run", "--temp", "-n", "iso", "-S", "train.lr=0.3")
    assert proc.returncode == 0, proc.stderr
    assert "TEMP training with lr 0.3" in proc.stdout
    after = repo_state(repo)
    assert after == before
    assert "lr: 0.1" in (repo / "params.yaml").read_text()
    assert not (repo / "tether.lock").exists() and not (repo / "metrics.json").exists()
    record = only_record(repo)
    assert record["temp_workspace"] is True and record["metrics"]["acc"] == 0.8
    assert git(repo, "worktree", "list").count("\n") == 0


def test_temp_worktree_comes_from_the_workspace_snapshot(repo: Path) -> None:
    """A --temp run sees the work tree as the snapshot takes it: edits, deletions and
    small untracked files, not untracked files over the cap (a warning says so)."""
    write(repo / "kept.txt", "committed\n")
    write(repo / "gone.txt", "deleted in the work tree\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    write(repo / "kept.txt", "edited\n")
    (repo / "gone.txt").unlink()
    write(repo / "new.txt", "untracked\n")
    (repo / "big.bin").write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    before = repo_state(repo)
    script = ("cat kept.txt new.txt > seen.txt; test -e gone.txt && echo gone-present >> seen.txt;"
              " test -e big.bin && echo big-present >> seen.txt; true")
    proc = run_tether(repo, "run", "--temp", "-n", "snap", "--", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert "warning: untracked file over 10 MiB not in the --temp worktree" in proc.stderr
    assert repo_state(repo) == before
    [ref] = exp_refs(repo)
    assert git(repo, "show", f"{ref}:seen.txt") == "edited\nuntracked"
    files = tree_files(repo, ref)
    assert "new.txt" in files and "gone.txt" not in files and "big.bin" not in files
    assert git(repo, "show", f"{ref}:kept.txt") == "edited"
    # The snapshot's ref is gone, and so is the worktree.
    assert git(repo, "for-each-ref", "refs/tether/snapshots/") == ""
    assert git(repo, "worktree", "list").count("\n") == 0


def test_stage_environment_variables(repo: Path) -> None:
    write(repo / "tether.yaml", """\
stages:
  env:
    cmd: env | grep -E '^(TETHER_|PYTHONUNBUFFERED|MY_VAR)' | sort > env.txt
    env: {MY_VAR: hello}
    outs: [env.txt]
""")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "env")
    assert run_tether(repo, "run", "-n", "envy").returncode == 0
    seen = dict(line.split("=", 1) for line in (repo / "env.txt").read_text().splitlines())
    assert seen["MY_VAR"] == "hello" and seen["PYTHONUNBUFFERED"] == "1"
    assert seen["TETHER_EXP_NAME"] == "envy" and seen["TETHER_STAGE"] == "env"
    assert seen["TETHER_RUN_ID"] == only_record(repo)["id"]
    assert Path(seen["TETHER_PARAMS_FILE"]).exists()


def test_duration_fields(repo: Path) -> None:
    start = time.time()
    assert run_tether(repo, "run", "-n", "t", "--", "true").returncode == 0
    record = only_record(repo)
    stage = record["stages"][0]
    assert start <= stage["started_at"] <= stage["ended_at"] <= time.time()
    assert record["duration"] >= stage["duration"] >= 0
    assert os.path.basename(record["argv"][0]) == "tether"


def test_recorded_tree_is_the_workspace(repo: Path) -> None:
    write(repo / "keep me.txt", "tracked, unchanged\n")
    write(repo / "gone.txt", "deleted by the user\n")
    write(repo / "tool.sh", "#!/bin/sh\necho tool\n")
    (repo / "tool.sh").chmod(0o755)
    write(repo / "tracked_out.bin", "old output\n")
    write(repo / "tether.yaml", "stages:\n  s:\n    cmd: echo new > tracked_out.bin\n"
          "    outs: [tracked_out.bin]\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    (repo / "gone.txt").unlink()
    write(repo / "staged.txt", "staged\n")
    git(repo, "add", "staged.txt")
    write(repo / "new dir" / "untracked file.txt", "untracked\n")
    (repo / "link").symlink_to("keep me.txt")
    (repo / "huge.bin").write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    assert run_tether(repo, "run", "-n", "tree").returncode == 0
    ref = next(iter(exp_refs(repo)))
    files = set(tree_files(repo, ref))
    assert {"keep me.txt", "tool.sh", "staged.txt", "new dir/untracked file.txt", "link"} <= files
    assert "gone.txt" not in files and "huge.bin" not in files
    assert "tracked_out.bin" not in files
    mode_line = git(repo, "ls-tree", ref, "tool.sh")
    assert mode_line.startswith("100755")
    assert git(repo, "ls-tree", ref, "link").startswith("120000")
    assert git(repo, "show", f"{ref}:new dir/untracked file.txt") == "untracked"
    assert not [r for r in exp_refs(repo) if "/tmp/" in r]
    record = only_record(repo)
    assert record["stages"][0]["outs"]["tracked_out.bin"].startswith("b3:")


def test_a_bare_command_names_its_metrics_and_plots_files(repo: Path) -> None:
    """`tether run --metrics FILE --plots FILE -- CMD`: not only ./metrics.json."""
    (repo / "sub").mkdir()
    script = (
        "import json, os; os.makedirs('out', exist_ok=True); "
        "json.dump({'acc': 0.9}, open('out/scores.json', 'w')); "
        "json.dump({'loss': 0.1}, open('extra.json', 'w')); "
        "open('out/curve.csv', 'w').write('step,loss\\n0,1\\n1,0.5\\n')"
    )
    proc = run_tether(repo / "sub", "run", "-n", "named", "--metrics", "out/scores.json",
                      "--metrics", "extra.json", "--plots", "out/curve.csv", "--",
                      "python", "-c", script)
    assert proc.returncode == 0, proc.stderr
    record = only_record(repo)
    assert record["metrics"] == {"acc": 0.9, "loss": 0.1}
    stage = record["stages"][0]
    assert "sub/out/curve.csv" in json.dumps(record)
    assert stage["status"] == "success"
    proc = run_tether(repo, "run", "--metrics", "m.json")
    assert proc.returncode == 2 and "`-- COMMAND` only" in proc.stderr
    proc = run_tether(repo, "run", "--metrics", "../escape.json", "--", "true")
    assert proc.returncode == 2 and "outside the project" in proc.stderr


FOREACH_SPEC = """\
stages:
  train:
    foreach: {small: 2, large: 8}
    do:
      cmd: python train.py ${key} ${item}
      deps: [train.py]
      metrics: ["metrics-${key}.json"]
      plots: ["steps-${key}.csv"]
  summary:
    cmd: python summary.py
    metrics: [summary.json]
metrics:
  "metrics-large.json:score": {direction: max}
"""


def test_the_same_metric_in_several_files_keeps_every_value(repo: Path) -> None:
    """A foreach whose items each write `score` (as DVC projects do) records each one,
    as `FILE:score`: no file's value silently replaces another's."""
    write(repo / "train.py", "import json, sys\n"
          "name, depth = sys.argv[1], int(sys.argv[2])\n"
          "json.dump({'score': depth / 10, 'depth': depth}, open(f'metrics-{name}.json', 'w'))\n"
          "open(f'steps-{name}.csv', 'w').write('step,loss\\n0,1\\n')\n")
    write(repo / "summary.py", "import json; json.dump({'runs': 2}, open('summary.json', 'w'))\n")
    write(repo / "tether.yaml", FOREACH_SPEC)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "foreach")
    proc = run_tether(repo, "run", "-n", "both")
    assert proc.returncode == 0, proc.stderr
    assert only_record(repo)["metrics"] == {
        "metrics-small.json:score": 0.2, "metrics-large.json:score": 0.8,
        "metrics-small.json:depth": 2, "metrics-large.json:depth": 8,
        "runs": 2,  # held by one file only: its own name
    }
    shown = run_tether(repo, "show", "--json")
    row = json.loads(shown.stdout)[0]
    assert row["metrics"]["metrics-small.json:score"] == 0.2
    filtered = run_tether(repo, "show", "--filter", "metrics.metrics-large.json:score > 0.5")
    assert filtered.returncode == 0 and "both" in filtered.stdout, filtered.stderr
