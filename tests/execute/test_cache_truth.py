"""A corrupt cache object never replaces bytes a stage just wrote, and is repaired."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import run_tether
from execute.project import make_project
from helpers import records
from tether.cache.hashing import hash_file_uncached
from tether.cache.objects import ObjectStore
from tether.project import object_store


def _tamper(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def test_a_rerun_over_a_corrupt_object_keeps_the_fresh_output(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "first").returncode == 0
    good = (repo / "model.bin").read_bytes()
    key = records(repo)[-1]["stages"][1]["outs"]["model.bin"]
    store = object_store(repo)
    _tamper(store.path_of(key), b"corrupt bytes")
    (repo / "model.bin").unlink()

    proc = run_tether(repo, "run", "-n", "forced", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "model.bin").read_bytes() == good
    # The corrupt object was replaced by the fresh bytes, so restoring works again.
    assert hash_file_uncached(store.path_of(key)) == key
    (repo / "model.bin").unlink()
    assert run_tether(repo, "checkout").returncode == 0
    assert (repo / "model.bin").read_bytes() == good


def test_a_corrupt_file_object_of_a_directory_output_is_repaired(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "first").returncode == 0
    store = object_store(repo)
    dir_key = records(repo)[-1]["stages"][0]["outs"]["data/prepared"]
    entries = dict(store.manifest(dir_key))
    _tamper(store.path_of(entries["train.txt"]), b"corrupt")
    fresh = (repo / "data" / "prepared" / "train.txt").read_bytes()

    proc = run_tether(repo, "run", "-n", "forced", "--force")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "data" / "prepared" / "train.txt").read_bytes() == fresh
    assert store.verify(dir_key)


def test_saving_never_links_a_corrupt_object_over_the_workspace(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, link_order=("reflink", "hardlink", "copy"))
    out = tmp_path / "out.bin"
    out.write_bytes(b"fresh output")
    key = store.save(out, link=False)
    _tamper(store.path_of(key), b"rotten")
    out.write_bytes(b"fresh output")
    assert store.save(out, link=True, digest=key) == key
    assert out.read_bytes() == b"fresh output"
    assert store.verify(key)


def test_a_corrupt_run_cache_object_makes_the_stage_run_instead(repo: Path) -> None:
    make_project(repo)
    assert run_tether(repo, "run", "-n", "a").returncode == 0
    good = (repo / "model.bin").read_bytes()
    assert run_tether(repo, "run", "-n", "b", "-S", "train.lr=0.7").returncode == 0
    key = records(repo)[0]["stages"][1]["outs"]["model.bin"]
    _tamper(object_store(repo).path_of(key), b"rotten")

    proc = run_tether(repo, "run", "-n", "c", "-S", "train.lr=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "train restored" not in proc.stderr and "▶ train" in proc.stderr
    assert (repo / "model.bin").read_bytes() == good
    assert records(repo)[-1]["metrics"] == records(repo)[0]["metrics"]
    assert hash_file_uncached(object_store(repo).path_of(key)) == key
