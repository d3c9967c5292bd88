"""The experiment index: a cache of the refs that follows fetches, deletions and corruption."""

from __future__ import annotations

import importlib.util
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import git, run_tether, write
from tether.experiments.index import INDEX_SCHEMA, index_path, refresh
from tether.gitstore.git import Git

BENCH_SHOW = Path(__file__).resolve().parent.parent / "bench" / "show.py"


def bench_show() -> ModuleType:
    """bench/show.py, whose generator records experiments through tether's own path."""
    spec = importlib.util.spec_from_file_location("bench_show", BENCH_SHOW)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(root: Path, name: str, acc: float) -> None:
    write(root / "score.py", "import json, sys\n"
          "json.dump({'acc': float(sys.argv[1])}, open('metrics.json', 'w'))\n")
    proc = run_tether(root, "run", "-n", name, "--", "python", "score.py", str(acc))
    assert proc.returncode == 0, proc.stderr


def names(root: Path) -> list[str]:
    index = refresh(Git(root))
    try:
        return sorted(exp.name for exp in index.experiments())
    finally:
        index.close()


def test_refresh_indexes_recorded_runs(repo: Path) -> None:
    record(repo, "first", 0.5)
    record(repo, "second", 0.75)
    index = refresh(Git(repo))
    try:
        experiments = index.experiments(git(repo, "rev-parse", "HEAD"))
    finally:
        index.close()
    assert [e.name for e in experiments] == ["first", "second"]
    assert experiments[1].metrics == {"acc": 0.75}
    assert experiments[1].status == "success"
    assert index_path(repo).exists()
    with sqlite3.connect(index_path(repo)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == INDEX_SCHEMA
    assert ".tether" not in git(repo, "status", "--porcelain")  # the index stays ignored


def test_fetched_and_deleted_refs_behind_the_index_back(repo: Path, tmp_path: Path) -> None:
    record(repo, "local", 0.5)
    assert names(repo) == ["local"]
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    record(other, "remote-one", 0.6)
    record(other, "remote-two", 0.7)
    git(repo, "fetch", "-q", str(other), "refs/tether/*:refs/tether/*")
    assert names(repo) == ["local", "remote-one", "remote-two"]
    ref = next(line.split()[0] for line in git(repo, "for-each-ref", "--format=%(refname) x",
                                               "refs/tether/exps").splitlines()
               if line.split()[0].endswith("/remote-one"))
    git(repo, "update-ref", "-d", ref)
    assert names(repo) == ["local", "remote-two"]
    with sqlite3.connect(index_path(repo)) as db:
        assert db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 2


def test_a_ref_moved_to_another_commit_is_read_again(repo: Path) -> None:
    record(repo, "a", 0.1)
    record(repo, "b", 0.9)
    refs = dict(line.split() for line in git(
        repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tether/exps"
    ).splitlines())
    ref_a = next(r for r in refs if r.endswith("/a"))
    ref_b = next(r for r in refs if r.endswith("/b"))
    assert names(repo) == ["a", "b"]
    git(repo, "update-ref", ref_a, refs[ref_b])
    index = refresh(Git(repo))
    try:
        moved = next(e for e in index.experiments() if e.ref == ref_a)
    finally:
        index.close()
    assert moved.commit == refs[ref_b]
    assert moved.metrics == {"acc": 0.9}


def test_deleted_corrupt_or_outdated_index_is_rebuilt(repo: Path) -> None:
    record(repo, "kept", 0.5)
    assert names(repo) == ["kept"]
    path = index_path(repo)
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert names(repo) == ["kept"]
    path.write_bytes(b"this is not a database at all" * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert names(repo) == ["kept"]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=0")
    assert names(repo) == ["kept"]


def test_index_deleted_while_a_reader_holds_it_open(repo: Path) -> None:
    record(repo, "one", 0.5)
    first = refresh(Git(repo))
    index_path(repo).unlink()
    try:
        assert [e.name for e in first.experiments()] == ["one"]
    finally:
        first.close()
    record(repo, "two", 0.6)
    assert names(repo) == ["one", "two"]


def _refresh_in_child(root: str) -> int:
    index = refresh(Git(Path(root)))
    try:
        return len(index.experiments())
    finally:
        index.close()


def test_two_processes_refreshing_at_once_both_succeed(repo: Path) -> None:
    bench_show().generate_experiments(repo, 400)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        counts = pool.map(_refresh_in_child, [str(repo)] * 4)
    assert counts == [400] * 4
    with sqlite3.connect(index_path(repo)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 400


def test_refresh_and_show_concurrently_from_the_cli(repo: Path) -> None:
    bench_show().generate_experiments(repo, 300)
    procs = [
        subprocess.Popen([*run_tether_argv(), "show", "--json"], cwd=repo,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.count('"ref"') == 300


def run_tether_argv() -> list[str]:
    return [sys.executable, "-m", "tether"]


def test_progress_is_reported_while_building(repo: Path) -> None:
    bench_show().generate_experiments(repo, 30)
    seen: list[tuple[int, int]] = []
    refresh(Git(repo), progress=lambda done, total: seen.append((done, total))).close()
    assert seen[0] == (0, 30) and seen[-1] == (30, 30)
    seen.clear()
    refresh(Git(repo), progress=lambda done, total: seen.append((done, total))).close()
    assert seen == []  # warm: nothing to read


@pytest.mark.parametrize("count", [1000])
def test_a_thousand_experiments(repo: Path, count: int) -> None:
    refs = bench_show().generate_experiments(repo, count)
    assert len(refs) == count
    proc = run_tether(repo, "show", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('"ref"') == count
    proc = run_tether(repo, "show", "--filter", "metrics.acc >= 0.99 and status == 'success'",
                      "--sort-by", "metrics.acc", "--desc", "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    accs = [float(r.split(",")[-2]) for r in rows]
    assert rows and accs == sorted(accs, reverse=True) and min(accs) >= 0.99
