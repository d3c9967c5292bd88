"""The step series cache (`web/series.py`): same answers as reading the rows each time,
one read per record, new experiments seen, hostile records kept to themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conftest import git
from helpers import exp_refs, record_of
from tether.gitstore.git import Git
from tether.record.stepcolumns import RecordSteps
from tether.record.stepfiles import SeriesFiles
from tether.web.downsample import lttb
from tether.web.lru import LRU
from tether.web.series import SeriesStore, axis
from tether.web.steps import points_of
from web.conftest import _env, client_for, record

NAMES = ["fast", "broken", "hostile", "wider"]
_number = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True))
_value = st.one_of(_number, st.none(), st.booleans(), st.text(max_size=3))
_row = st.one_of(
    st.fixed_dictionaries({}, optional={"step": _value, "ts": _value, "timestamp": _value,
                                        "m": _value, "other": _value}),
    st.lists(st.integers(), max_size=2), st.text(max_size=2), st.none())


def listed(xy: tuple[Any, Any]) -> tuple[list[float], list[float]]:
    """`series.axis`'s arrays as the lists `points_of` gives."""
    return xy[0].tolist(), xy[1].tolist()


@given(st.lists(_row, max_size=40), st.sampled_from(["step", "time"]))
def test_columns_give_what_the_rows_give(rows: list[Any], x_axis: str) -> None:
    columns = RecordSteps({"train": rows}).columns("m")
    dicts = [row if isinstance(row, dict) else {} for row in rows]
    expected = points_of(dicts, "m", x_axis)
    if columns is None:
        assert not any("m" in row for row in dicts) and expected == ([], [])
    else:
        assert listed(axis(columns, x_axis)) == expected


def _reference(root: Path, name: str, metric: str, x_axis: str, points: int) -> dict[str, Any]:
    """The answer made from the record's rows, as the viewer made it before any cache."""
    ref = next(r for r in exp_refs(root) if r.endswith("/" + name))
    rows = record_of(root, ref)["steps"]["train"]
    xs, ys = points_of(rows, metric, x_axis)
    kept_x, kept_y = lttb(xs, ys, points)
    return {"name": name, "x": kept_x, "y": kept_y, "total": len(xs)}


def test_cached_answers_are_the_uncached_ones_and_records_are_read_once(
        project: Path) -> None:
    with client_for(project) as client:
        store = client.app.state.viewer.steps_store  # type: ignore[attr-defined]
        compared = client.get("/api/compare?names=" + ",".join(NAMES)).json()
        assert compared["step_metrics"] == ["acc", "loss"]
        assert store.reads == len(NAMES)  # the compare page's read serves the plots too
        for metric, x_axis, points in [("loss", "step", 10), ("acc", "time", 7),
                                       ("loss", "step", 1000)]:
            url = f"/api/steps?names={','.join(NAMES)}&metric={metric}&x={x_axis}&points={points}"
            first, again = client.get(url).json(), client.get(url).json()
            assert first == again
            assert first["series"] == [_reference(project, n, metric, x_axis, points)
                                       for n in NAMES]
        assert store.reads == len(NAMES)
        absent = client.get("/api/steps?names=fast&metric=nope").json()["series"][0]
        assert absent == {"name": "fast", "x": [], "y": [], "total": 0}


def test_a_new_experiment_appears(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(project, root)
    env = _env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    with client_for(root) as client:
        store = client.app.state.viewer.steps_store  # type: ignore[attr-defined]
        assert client.get("/api/steps?names=fast&metric=loss").status_code == 200
        assert client.get("/api/steps?names=newer&metric=loss").status_code == 404
        record(root, "-n", "newer", "-S", "train.lr=0.5", env=env)
        body = client.get("/api/steps?names=fast,newer&metric=loss&points=5").json()
        assert [s["name"] for s in body["series"]] == ["fast", "newer"]
        assert body["series"][1] == _reference(root, "newer", "loss", "step", 5)
        assert store.reads == 2  # fast once, newer once


def _commit(root: Path, blob: bytes | None, message: str) -> str:
    """A commit of `root` whose `.tether/record.json` is `blob` (none when None)."""
    path = root / ".tether" / "record.json"
    path.unlink(missing_ok=True)
    if blob is not None:
        path.write_bytes(blob)
    git(root, "add", "-Af", ".")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def test_hostile_records_stay_to_themselves(project: Path, tmp_path: Path) -> None:
    good = record_of(project, next(r for r in exp_refs(project) if r.endswith("/fast")))
    root = tmp_path / "hostile"
    (root / ".tether").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    hostile_rows = [{"step": 10**400, "loss": 1.0}, {"step": 1, "loss": "<script>"},
                    {"step": 2, "loss": float("inf")}, {"step": 3, "loss": True},
                    [1, 2], "row", None, {"step": 4, "loss": 10**400},
                    {"step": 5, "loss": 0.5, "ts": "never"}, {"loss": 0.25}]
    hostile = dict(good, steps={"train": hostile_rows, "bad": "not rows"})
    commits = {
        "good": _commit(root, json.dumps(good).encode(), "good"),
        "hostile": _commit(root, json.dumps(hostile).encode(), "hostile"),
        "not json": _commit(root, b"{\"steps\": [", "not json"),
        "invalid": _commit(root, json.dumps({"steps": good["steps"]}).encode(), "invalid"),
        "none": _commit(root, None, "no record"),
    }
    store = SeriesStore()
    found = store.series(Git(root), list(commits.values()), "loss")
    assert found[0] is not None and found[1] is not None
    assert listed(axis(found[0], "step")) == points_of(good["steps"]["train"], "loss", "step")
    assert listed(axis(found[1], "step")) == ([5.0, 9.0], [0.5, 0.25])  # the rest left out
    assert found[2:] == [None, None, None]  # unreadable: other sources may be looked at
    assert store.metric_names(Git(root), list(commits.values()))[1:] == [
        frozenset({"loss"}), frozenset(), frozenset(), frozenset()]
    assert store.reads == len(commits)
    assert store.series(Git(root), [commits["good"]], "loss")[0] == found[0]
    assert store.reads == len(commits)


def test_series_files_serve_a_new_viewer_and_bad_ones_are_made_again(
        project: Path, tmp_path: Path) -> None:
    with client_for(project) as client:
        viewer = client.app.state.viewer  # type: ignore[attr-defined]
        viewer.steps_store = SeriesStore(SeriesFiles(tmp_path / "steps", min_points=1))
        url = "/api/steps?names=fast,broken&metric=acc&x=time&points=9"
        first = client.get(url).json()
        viewer.steps_store = SeriesStore(SeriesFiles(tmp_path / "steps", min_points=1))
        viewer.series_cache = LRU(8)
        assert client.get(url).json() == first and viewer.steps_store.reads == 0
        viewer.series_cache = LRU(8)
        for path in (tmp_path / "steps").rglob("*.*"):  # only the columns are left
            if path.read_bytes().startswith(b"["):
                path.unlink()
        other = "/api/steps?names=fast,broken&metric=acc&x=time&points=8"
        assert client.get(url).json() == first and client.get(other).status_code == 200
        assert viewer.steps_store.reads == 0
        for path in (tmp_path / "steps").rglob("*.*"):
            path.write_bytes(path.read_bytes()[:-1])  # a torn file: ignored, made again
        viewer.steps_store = SeriesStore(SeriesFiles(tmp_path / "steps", min_points=1))
        viewer.series_cache = LRU(8)
        assert client.get(url).json() == first and viewer.steps_store.reads == 2
    assert not list((tmp_path / "steps").rglob(".tmp-*"))
    assert SeriesFiles(tmp_path / "steps").load("../../etc", "acc") is None


def test_the_cache_holds_at_most_its_floats() -> None:
    cache = LRU(10)
    cache.put("a", 1, 4)
    cache.put("b", 2, 4)
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3, 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.put("huge", 4, 11)
    assert cache.get("huge") is None and cache.weight == 8


def test_missing_git_object_is_not_a_crash(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert SeriesStore().series(Git(tmp_path), ["0" * 40], "loss") == [None]
