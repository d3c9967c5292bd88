"""The invariant matrix: one realistic project through every path a run can take, and after
each the same checks of what a user relies on.

The project: prepare (reads git-ignored `data/raw.csv`, writes the folder `prepared/`) →
train (params `train.lr`, `train.fail`; step metrics through `tether.log`; writes the folder
`model/`) → evaluate (writes the folder `eval/`, whose `eval/metrics.json` is the metrics
file). `-S train.fail=true` is the failing variant.

After each path: the experiment is recorded with the right status; its metrics are its own
(none when it failed); every declared output comes back byte-identical with `tether
checkout EXP`, here and in a fresh clone after push/pull; stages whose inputs did not
change did not run again; HEAD, the index and branches are untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, record_of

PREPARE = """\
import os, pathlib
with open(pathlib.Path(os.environ["COUNT_DIR"]) / "prepare", "a") as counter:
    counter.write("x")
raw = pathlib.Path("data/raw.csv").read_text()
out = pathlib.Path("prepared")
out.mkdir(exist_ok=True)
(out / "train.csv").write_text(raw.upper())
(out / "test.csv").write_text(raw[::-1])
"""

TRAIN = """\
import os, pathlib, sys, time
import tether
with open(pathlib.Path(os.environ["COUNT_DIR"]) / "train", "a") as counter:
    counter.write("x")
p = tether.params()["train"]
data = pathlib.Path("prepared/train.csv").read_text()
for step in range(3):
    tether.log(step=step, loss=round(p["lr"] / (step + 1), 6))
if os.environ.get("TRAIN_BLOCK"):
    pathlib.Path(os.environ["TRAIN_BLOCK"]).write_text("started")
    while True:
        time.sleep(0.05)
if p["fail"]:
    print("train: diverged", file=sys.stderr)
    sys.exit(1)
out = pathlib.Path("model")
out.mkdir(exist_ok=True)
(out / "model.bin").write_bytes(f"weights lr={p['lr']} {len(data)}".encode() * 50)
(out / "vocab.txt").write_text("a\\nb\\n")
"""

EVALUATE = """\
import json, os, pathlib
with open(pathlib.Path(os.environ["COUNT_DIR"]) / "evaluate", "a") as counter:
    counter.write("x")
model = pathlib.Path("model/model.bin").read_bytes()
lr = float(model.split(b"lr=")[1].split()[0])
out = pathlib.Path("eval")
out.mkdir(exist_ok=True)
json.dump({"acc": round(1 - lr, 4), "size": len(model)}, open(out / "metrics.json", "w"))
(out / "report.txt").write_text(f"evaluated {len(model)} bytes\\n")
"""

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [prepared]
  train:
    cmd: python train.py
    deps: [train.py, prepared]
    params: [train.lr, train.fail]
    outs: [model]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, model]
    outs: [eval]
    metrics: [eval/metrics.json]
metrics:
  acc: {direction: max}
"""

OUTPUTS = ("prepared", "model", "eval")


def make_project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "train:\n  lr: 0.1  # learning rate\n  fail: false\n")
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "evaluate.py", EVALUATE)
    write(root / ".gitignore", "prepared/\nmodel/\neval/\n")
    write(root / "data" / "raw.csv", "id,x\n1,0.5\n2,0.25\n")  # `tether add` ignores it


def files_under(root: Path, folders: tuple[str, ...] = OUTPUTS) -> dict[str, bytes]:
    found = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def expected_outputs(lr: float, raw: str = "id,x\n1,0.5\n2,0.25\n") -> dict[str, bytes]:
    """What a successful run with `lr` writes, computed independently of tether."""
    model = f"weights lr={lr} {len(raw)}".encode() * 50
    return {
        "eval/metrics.json": json.dumps({"acc": round(1 - lr, 4), "size": len(model)}).encode(),
        "eval/report.txt": f"evaluated {len(model)} bytes\n".encode(),
        "model/model.bin": model,
        "model/vocab.txt": b"a\nb\n",
        "prepared/test.csv": raw[::-1].encode(),
        "prepared/train.csv": raw.upper().encode(),
    }


def git_state(root: Path) -> dict[str, str]:
    """What recording must never touch: HEAD, branches and tags, the index."""
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "symbolic": git(root, "symbolic-ref", "-q", "HEAD"),
        "branches": git(root, "for-each-ref", "refs/heads", "refs/tags"),
        "index": git(root, "ls-files", "-s"),
        "staged": git(root, "diff", "--cached", "--name-only"),
    }


def counts(count_dir: Path) -> dict[str, int]:
    return {p.name: len(p.read_text()) for p in count_dir.iterdir()}


def tether(root: Path, *args: str, env: dict[str, str] | None = None,
           ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = run_tether(root, *args, env=env, timeout=180)
    assert proc.returncode in ok, f"tether {' '.join(args)}: {proc.returncode}\n" \
        f"{proc.stdout}\n{proc.stderr}"
    return proc


def record_named(root: Path, name: str) -> dict[str, Any]:
    refs = [r for r in exp_refs(root) if r.startswith("refs/tether/exps/")
            and r.rsplit("/", 1)[1] == name]
    assert len(refs) == 1, (name, list(exp_refs(root)))
    return record_of(root, refs[0])


class Matrix:
    """The project, its bare git origin and artifact store, and the per-run counters."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp
        self.origin = tmp / "origin.git"
        self.store = tmp / "artifacts"
        self.count_dir = tmp / "counts"
        self.count_dir.mkdir()
        self.env = {"COUNT_DIR": str(self.count_dir)}

    def setup(self) -> None:
        make_project(self.root)
        tether(self.root, "remote", "add", "store", str(self.store), "--default")
        tether(self.root, "add", "data/raw.csv")
        assert git(self.root, "check-ignore", "data/raw.csv") == "data/raw.csv"
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", "pipeline")
        git(self.tmp, "init", "-q", "--bare", "-b", "main", str(self.origin))
        git(self.root, "remote", "add", "origin", str(self.origin))
        git(self.root, "push", "-q", "origin", "main")

    def run(self, *args: str, ok: tuple[int, ...] = (0,),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return tether(self.root, *args, env={**self.env, **(env or {})}, ok=ok)

    def check(self, name: str, *, status: str, lr: float | None,
              where: Path | None = None) -> dict[str, Any]:
        """The checks every path must pass; returns the record."""
        root = where or self.root
        record = record_named(root, name)
        assert record["status"] == status, record.get("stages")
        if status == "success":
            assert lr is not None
            expected = expected_outputs(lr)
            assert record["metrics"] == json.loads(expected["eval/metrics.json"]), record
            # step metrics are this run's own
            series = json.dumps(record.get("steps") or record.get("step_metrics") or {})
            assert str(round(lr / 3, 6)) in series, series
            self.check_restores(name, expected, root)
        else:
            assert not record.get("metrics"), record["metrics"]
            by_stage = {s["name"]: s for s in record["stages"]}
            assert by_stage["evaluate"]["status"] != "success"
            assert not (by_stage["evaluate"].get("outs") or {})
        return record

    def check_restores(self, name: str, expected: dict[str, bytes], root: Path) -> None:
        """`tether checkout EXP` brings back every output byte-identical, from nothing."""
        for folder in OUTPUTS:
            subprocess.run(["rm", "-rf", str(root / folder)], check=True)
        tether(root, "checkout", name)
        assert files_under(root) == expected

    def fresh_clone_restores(self, name: str, lr: float) -> None:
        """Push to origin and the artifact store; a fresh clone pulls and checks out."""
        tether(self.root, "push", "origin", name)
        clone = self.tmp / f"clone-{name}"
        git(self.tmp, "clone", "-q", str(self.origin), str(clone))
        tether(clone, "pull", "origin", name)
        tether(clone, "checkout", name)
        assert files_under(clone) == expected_outputs(lr)
        # the tracked input data comes along too
        assert (clone / "data" / "raw.csv").read_text() == "id,x\n1,0.5\n2,0.25\n"


@pytest.fixture
def matrix(repo: Path, tmp_path: Path) -> Matrix:
    m = Matrix(repo, tmp_path)
    m.setup()
    return m


def test_in_place_runs_record_the_truth(matrix: Matrix) -> None:
    before = git_state(matrix.root)
    matrix.run("run", "-n", "base")
    matrix.check("base", status="success", lr=0.1)
    matrix.run("run", "-n", "lr2", "-S", "train.lr=0.2")
    matrix.check("lr2", status="success", lr=0.2)
    assert counts(matrix.count_dir) == {"prepare": 1, "train": 2, "evaluate": 2}
    # The failing variant: evaluate's metrics from the earlier run must not leak in.
    matrix.run("run", "-n", "broken", "-S", "train.fail=true", ok=(1,))
    matrix.check("broken", status="failed", lr=None)
    assert counts(matrix.count_dir)["prepare"] == 1
    assert git_state(matrix.root) == before
    matrix.fresh_clone_restores("lr2", 0.2)
    # show marks the best value only among successful runs
    shown = json.loads(tether(matrix.root, "show", "--json").stdout)
    rows = shown if isinstance(shown, list) else shown.get("experiments", shown)
    assert any("broken" in json.dumps(row) for row in rows)


def test_temp_runs_record_the_truth(matrix: Matrix) -> None:
    before = git_state(matrix.root)
    matrix.run("run", "-n", "warm")
    matrix.run("run", "--temp", "-n", "tmp-lr3", "-S", "train.lr=0.3")
    matrix.check("tmp-lr3", status="success", lr=0.3)
    matrix.run("run", "--temp", "-n", "tmp-broken", "-S", "train.fail=true", ok=(1,))
    matrix.check("tmp-broken", status="failed", lr=None)
    assert git_state(matrix.root) == before
    assert git(matrix.root, "worktree", "list").count("\n") == 0  # no worktree left behind
    matrix.fresh_clone_restores("tmp-lr3", 0.3)


def test_bare_commands_always_run_and_record_their_own_metrics(matrix: Matrix) -> None:
    script = matrix.root / "t2.py"
    write(script, "import json\njson.dump({'score': 1}, open('metrics.json', 'w'))\n")
    git(matrix.root, "add", "t2.py")
    git(matrix.root, "commit", "-q", "-m", "t2")
    matrix.run("run", "-n", "bare1", "--", "python", "t2.py")
    write(script, "import json\njson.dump({'score': 2}, open('metrics.json', 'w'))\n")
    git(matrix.root, "commit", "-q", "-am", "t2 changed")
    matrix.run("run", "-n", "bare2", "--", "python", "t2.py")
    assert record_named(matrix.root, "bare2")["metrics"] == {"score": 2}
    write(script, "import sys\nsys.exit(2)\n")
    git(matrix.root, "commit", "-q", "-am", "t2 fails")
    matrix.run("run", "-n", "bare3", "--", "python", "t2.py", ok=(1,))
    failed = record_named(matrix.root, "bare3")
    assert failed["status"] == "failed" and not failed.get("metrics")


def test_a_run_killed_mid_stage_is_recorded_interrupted(matrix: Matrix) -> None:
    matrix.run("run", "-n", "first")
    before = git_state(matrix.root)
    started = matrix.tmp / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "-n", "killed", "-S", "train.lr=0.4"],
        cwd=matrix.root, env={**os.environ, **matrix.env, "TRAIN_BLOCK": str(started)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = record_named(matrix.root, "killed")
    assert record["status"] == "interrupted"
    assert not record.get("metrics")
    assert git_state(matrix.root) == before
    # The earlier run's outputs are still restorable after the interruption.
    matrix.check("first", status="success", lr=0.1)


def test_queued_runs_record_the_truth(matrix: Matrix) -> None:
    matrix.run("run", "-n", "warm")  # prepare's result is in the run-cache from here on
    before = git_state(matrix.root)
    matrix.run("run", "--queue", "-n", "q", "-S", "train.lr=0.3,0.4")
    matrix.run("run", "--queue", "-n", "qbad", "-S", "train.fail=true")
    matrix.run("worker", "--exit-when-idle", ok=(1,))  # 1: an entry it ran failed
    matrix.check("q-1", status="success", lr=0.3)
    matrix.check("q-2", status="success", lr=0.4)
    matrix.check("qbad", status="failed", lr=None)
    assert counts(matrix.count_dir) == {"prepare": 1, "train": 4, "evaluate": 3}
    assert git_state(matrix.root) == before
    matrix.fresh_clone_restores("q-2", 0.4)
    # A retry of the failure is a new experiment with its own (no) metrics.
    matrix.run("queue", "retry", "--failed")
    matrix.run("worker", "--exit-when-idle", ok=(1,))
    matrix.check("qbad-r2", status="failed", lr=None)
    assert git_state(matrix.root) == before
