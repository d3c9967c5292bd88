"""Step columns are on disk before anyone opens the viewer (`record/stepfiles.py`): a run
(in place or by a queue worker) writes them as it records, a pull writes those of the
experiments it brings while indexing them; the viewer's first compare then reads no
record and answers what the records' rows give. Hostile steps cost a bounded amount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, record_of
from tether.layout import view_steps_dir
from tether.record.stepfiles import MIN_POINTS, SeriesFiles, keep_columns
from tether.web.downsample import lttb
from tether.web.series import axis
from tether.web.steps import points_of
from web.conftest import client_for

STEPS = MIN_POINTS + 500
SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.seed]
"""
TRAIN = f"""\
import tether
seed = tether.params()["train"]["seed"]
for step in range({STEPS}):
    row = {{"loss": 1 / (1 + step / 1000) + seed / 100, "acc": step % 7 / 7}}
    if step % 1000 == 0:
        row["val"] = seed + step / 1000  # sparse: NaN between, left out of the plot
    if step == 5:
        row["acc"] = "warmup"  # text: left out
    tether.log(step=step, **row)
"""
NAMES = ("direct", "queued")
METRICS = ["acc", "loss", "val"]


def listed(xy: tuple[Any, Any]) -> tuple[list[float], list[float]]:
    """`series.axis`'s arrays as the lists `points_of` gives."""
    return xy[0].tolist(), xy[1].tolist()


def _ok(cwd: Path, *args: str) -> str:
    proc = run_tether(cwd, *args, timeout=300)
    assert proc.returncode == 0, f"tether {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _commits(root: Path) -> dict[str, str]:
    return {ref.rsplit("/", 1)[1]: commit for ref, commit in exp_refs(root).items()
            if ref.startswith("refs/tether/exps/")}


def _assert_kept(root: Path, commits: dict[str, str]) -> None:
    files = SeriesFiles(view_steps_dir(root))
    for commit in commits.values():
        assert files.load_names(commit) == frozenset(METRICS)
        for metric in METRICS:
            columns = files.load(commit, metric)
            assert columns is not None and len(columns[0]) == STEPS


def _reference(root: Path, name: str, metric: str, x_axis: str, points: int) -> dict[str, Any]:
    """The answer made from the record's rows, as the viewer made it before any cache."""
    ref = next(r for r in exp_refs(root) if r.endswith("/" + name))
    xs, ys = points_of(record_of(root, ref)["steps"]["train"], metric, x_axis)
    kept_x, kept_y = lttb(xs, ys, points)
    return {"name": name, "x": kept_x, "y": kept_y, "total": len(xs)}


def test_runs_and_pulls_keep_the_columns_the_first_compare_reads(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  seed: 0\n")
    write(repo / "train.py", TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    _ok(repo, "run", "-q", "-n", "direct", "-S", "train.seed=1")
    _ok(repo, "run", "--queue", "-n", "queued", "-S", "train.seed=2")
    _ok(repo, "worker", "--exit-when-idle")  # runs it in a worktree of its own
    commits = _commits(repo)
    assert sorted(commits) == sorted(NAMES)
    _assert_kept(repo, commits)  # the queued run's too: under the main work tree

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    _ok(repo, "push", "--all", "--no-artifacts")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    _ok(clone, "pull", "--all", "--no-artifacts")
    assert _commits(clone) == commits
    _assert_kept(clone, commits)  # written while the pull indexed them

    import tether.gitstore.experiments as experiments

    def unread(*args: object) -> None:
        raise AssertionError("the viewer read a record")

    with client_for(clone) as client:
        monkeypatch.setattr(experiments, "read_record_blobs", unread)
        store = client.app.state.viewer.steps_store  # type: ignore[attr-defined]
        compared = client.get("/api/compare?names=" + ",".join(NAMES)).json()
        assert compared["step_metrics"] == METRICS
        for metric, x_axis, points in [("loss", "step", 1000), ("acc", "time", 700),
                                       ("val", "step", 50)]:
            url = f"/api/steps?names={','.join(NAMES)}&metric={metric}&x={x_axis}&points={points}"
            assert client.get(url).json()["series"] == [
                _reference(clone, name, metric, x_axis, points) for name in NAMES]
        assert store.reads == 0

    # A removed experiment's columns (and the viewer's answers) go with the next gc.
    _ok(clone, "remove", "queued")
    kept = SeriesFiles(view_steps_dir(clone))
    dry = run_tether(clone, "gc", "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "would remove  " in dry.stdout and "viewer step-column file(s)" in dry.stdout
    assert kept.load_names(commits["queued"]) is not None  # --dry deletes nothing
    swept = run_tether(clone, "gc")
    assert swept.returncode == 0, swept.stderr
    [line] = [line for line in swept.stdout.splitlines() if "step-column" in line]
    assert line.startswith("removed  ") and "of experiments no longer kept" in line
    assert kept.load_names(commits["queued"]) is None
    assert not list(view_steps_dir(clone).glob(f"{commits['queued'][:2]}/"
                                               f"{commits['queued'][2:]}.*"))
    _assert_kept(clone, {"direct": commits["direct"]})
    assert "step-column" not in run_tether(clone, "gc").stdout  # nothing left to sweep


COMMIT = "ab" * 20


def test_a_commit_kept_once_and_hostile_steps_cost_a_bounded_amount(tmp_path: Path) -> None:
    sparse = [{"step": i, f"m{i:05d}": 1.0} for i in range(MIN_POINTS)]  # a metric per row
    keep_columns(tmp_path, COMMIT, {"train": sparse})
    files = list(view_steps_dir(tmp_path).rglob("*.*"))
    columns = [path for path in files if path.read_bytes().startswith(b"tether-steps")]
    assert 0 < len(columns) < 10  # of 10,000 metrics: 8 floats per value the rows hold
    assert sum(path.stat().st_size - 23 for path in columns) <= 8 * 8 * 2 * MIN_POINTS
    assert SeriesFiles(view_steps_dir(tmp_path)).load_names(COMMIT) is not None
    keep_columns(tmp_path, COMMIT, {"train": [{"step": 1, "other": 2.0}] * MIN_POINTS})
    assert sorted(view_steps_dir(tmp_path).rglob("*.*")) == sorted(files)  # kept once


def test_hostile_values_are_left_out_and_bad_places_write_nothing(tmp_path: Path) -> None:
    rows: list[Any] = [{"step": 10**400, "loss": True}, [1], None, {"loss": "<x>"},
                       {"step": 3, "loss": float("inf"), "ts": "never"}, {"step": 2.5}]
    rows += [{"step": i, "loss": 10**400 if i % 3 else i / 7} for i in range(4, MIN_POINTS)]
    keep_columns(tmp_path, COMMIT, {"train": rows, "bad": "not rows"})
    kept = SeriesFiles(view_steps_dir(tmp_path)).load(COMMIT, "loss")
    assert kept is not None
    kept_steps = [i for i in range(4, MIN_POINTS) if i % 3 == 0]  # the finite numbers
    assert listed(axis(kept, "step")) == ([float(i) for i in kept_steps],
                                          [i / 7 for i in kept_steps])
    assert listed(axis(kept, "time")) == ([], [])  # no row has a time
    long = {"train": [{"step": i, "loss": 1.0} for i in range(MIN_POINTS)]}
    for commit in ("../../" + "ab" * 17, "AB" * 20, "ab" * 20 + "\n"):
        keep_columns(tmp_path / "other", commit, long)
    assert not (tmp_path / "other").exists()
    blocked = tmp_path / "blocked"
    write(blocked / ".tether" / "view", "a file where the folder goes")
    keep_columns(blocked, COMMIT, long)  # no error: the files are only a cache
    assert not SeriesFiles(view_steps_dir(blocked)).load_names(COMMIT)
