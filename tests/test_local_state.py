"""Unusable local state (full disk, garbage databases, missing permissions) is exit 14 with
a message saying what could not be written and what, if anything, was lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [model]
    metrics: [metrics.json]
"""
TRAIN = """\
import json, pathlib
pathlib.Path('model').mkdir(exist_ok=True)
pathlib.Path('model/weights.bin').write_bytes(b'w' * 1000)
json.dump({'acc': 0.9}, open('metrics.json', 'w'))
"""


def make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write(root / "tether.yaml", SPEC)
    write(root / "train.py", TRAIN)
    write(root / ".gitignore", "model/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    proc = run_tether(root, "run", "-n", "first")
    assert proc.returncode == 0, proc.stderr
    assert run_tether(root, "show").returncode == 0  # creates the index
    return root


def assert_local_state(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 14, proc.stderr
    assert "internal error" not in proc.stderr and "please report" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
    ).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def test_full_disk_is_a_local_state_error_and_loses_nothing_recorded(tiny_disk: Path) -> None:
    root = make_project(tiny_disk / "project")
    refs_before = exp_refs(root)
    filler = fill(tiny_disk)
    run = run_tether(root, "run", "-n", "second", "--force")
    assert_local_state(run, "cannot write", "space left on device", "free some space",
                       "not recorded")
    assert exp_refs(root) == refs_before  # the first experiment is intact
    filler.unlink()
    shown = run_tether(root, "show")
    assert shown.returncode == 0, shown.stderr
    assert "first" in shown.stdout
    again = run_tether(root, "run", "-n", "second", "--force")
    assert again.returncode == 0, again.stderr


def test_full_disk_while_indexing_says_nothing_is_lost(tiny_disk: Path) -> None:
    root = make_project(tiny_disk / "project")
    (root / ".tether" / "index.db").unlink()
    for suffix in ("-wal", "-shm"):
        (root / ".tether" / f"index.db{suffix}").unlink(missing_ok=True)
    fill(tiny_disk)
    proc = run_tether(root, "show")
    assert_local_state(proc, "index", "nothing is lost")


def test_garbage_queue_db_is_a_local_state_error(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    (root / ".tether" / "queue.db").write_bytes(os.urandom(8192))
    refs_before = exp_refs(root)
    assert_local_state(run_tether(root, "queue", "status"), "queue.db is not a SQLite database",
                       "move it away", "entries in it are lost")
    assert_local_state(run_tether(root, "run", "--queue"), "queue.db is not a SQLite database")
    assert exp_refs(root) == refs_before  # no snapshot ref left behind
    (root / ".tether" / "queue.db").unlink()
    assert run_tether(root, "queue", "status").returncode == 0


def test_queue_db_that_is_a_directory_is_a_local_state_error(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    (root / ".tether" / "queue.db").mkdir()
    assert_local_state(run_tether(root, "queue", "status"), "is a directory")


def test_index_db_that_is_a_directory_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    index = root / ".tether" / "index.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    write(index / "notes.txt", "someone's file\n")
    proc = run_tether(root, "show")
    assert proc.returncode == 0, proc.stderr
    assert "first" in proc.stdout
    assert "moved it aside" in proc.stderr and "nothing is lost" in proc.stderr
    aside = [p for p in index.parent.iterdir() if p.name.startswith("index.db.not-an-index")]
    assert len(aside) == 1 and (aside[0] / "notes.txt").read_text() == "someone's file\n"
    again = run_tether(root, "show")
    assert again.returncode == 0 and "warning" not in again.stderr


def _without_root_powers(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tether so that file permissions apply, even when the tests run as root."""
    command = [sys.executable, "-m", "tether", *args]
    if os.geteuid() == 0:
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("needs capsh to drop root's file-permission override")
        quoted = " ".join(f"'{part}'" for part in command)
        command = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", quoted]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def test_permission_denied_on_tether_files_is_a_local_state_error(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    index = root / ".tether" / "index.db"
    runs = root / ".tether" / "runs"
    index.chmod(0)
    try:
        assert_local_state(_without_root_powers(root, "show"), "index.db",
                           "read and write access")
    finally:
        index.chmod(0o644)
    runs.chmod(0o500)
    try:
        assert_local_state(_without_root_powers(root, "run", "-n", "denied", "--force"),
                           "Permission denied", str(runs))
    finally:
        runs.chmod(0o755)
    assert sorted(r.rsplit("/", 1)[1] for r in exp_refs(root)) == ["first"]
