"""Untracked files over the size cap: listed, not stored, and a queued run is warned about."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from gitstates.conftest import exp_ref, make_project, tether
from helpers import record_of, tree_files

BIG = 10 * 1024 * 1024 + 1


def test_big_untracked_file_is_listed_and_enqueue_warns(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    (repo / "weights.pt").write_bytes(b"\0" * BIG)
    write(repo / "small.txt", "kept\n")
    tether(repo, "run", "-n", "inplace")
    ref = exp_ref(repo, "inplace")
    files = tree_files(repo, ref)
    assert "small.txt" in files and "weights.pt" not in files
    assert "weights.pt" in record_of(repo, ref)["code"]["untracked"]

    proc = tether(repo, "run", "--queue", "-n", "queued")
    assert "warning: untracked file over 10 MiB not in the queued snapshot" in proc.stderr
    assert "weights.pt" in proc.stderr
    proc = tether(repo, "run", "--queue", "-n", "queued2", "--", "true")
    assert "weights.pt" in proc.stderr


def test_enqueue_warns_about_a_dirty_submodule(repo: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    write(lib / "t.csv", "1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "v1")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "sub")
    make_project(repo)
    write(repo / "sub" / "t.csv", "2\n")
    proc = tether(repo, "run", "--queue", "-n", "queued")
    assert "uncommitted changes inside submodule sub" in proc.stderr
    git(repo / "sub", "checkout", "-q", "--", "t.csv")
    quiet = tether(repo, "run", "--queue", "-n", "q3", "--", "true")
    assert "warning" not in quiet.stderr
