"""`tether add`: data inputs tracked by content, outside git, restored everywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import git, run_tether, write
from tether.errors import EXIT_UNSAFE_PATH, EXIT_USAGE


def ok(root: Path, *args: str) -> str:
    proc = run_tether(root, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_add_tracks_a_file_and_a_folder(repo: Path, tmp_path: Path) -> None:
    write(repo / "data" / "raw.csv", "a,b\n1,2\n")
    write(repo / "images" / "one.txt", "1")
    write(repo / "images" / "sub" / "two.txt", "2")
    out = ok(repo, "add", "data/raw.csv", "images")
    assert "data/raw.csv.tether" in out
    pointer = (repo / "data" / "raw.csv.tether").read_text()
    assert "path: raw.csv" in pointer and "key: b3:" in pointer
    assert "files: 2" in (repo / "images.tether").read_text()
    # git ignores the data, not the pointers
    assert git(repo, "check-ignore", "data/raw.csv", "images").split() == [
        "data/raw.csv", "images"]
    status = git(repo, "status", "--porcelain", "-uall")
    assert "data/raw.csv.tether" in status
    assert ".tether/" not in status  # the cache itself never shows up for git
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    # gone from the work tree: checkout brings both back, byte-identical
    (repo / "data" / "raw.csv").unlink()
    (repo / "images" / "sub" / "two.txt").write_text("changed")
    out = ok(repo, "checkout")
    assert (repo / "data" / "raw.csv").read_text() == "a,b\n1,2\n"
    assert (repo / "images" / "sub" / "two.txt").read_text() == "2"
    # adding a changed file again updates the pointer
    write(repo / "data" / "raw.csv", "a,b\n3,4\n")
    ok(repo, "add", "data/raw.csv")
    assert (repo / "data" / "raw.csv.tether").read_text() != pointer
    assert (repo / "data" / ".gitignore").read_text().count("/raw.csv") == 1


def test_add_refuses_what_it_cannot_track(repo: Path, tmp_path: Path) -> None:
    write(repo / "tracked.txt", "in git\n")
    git(repo, "add", "tracked.txt")
    git(repo, "commit", "-q", "-m", "t")
    proc = run_tether(repo, "add", "tracked.txt")
    assert proc.returncode == EXIT_USAGE and "git rm -r --cached" in proc.stderr
    proc = run_tether(repo, "add", "missing.csv")
    assert proc.returncode == EXIT_USAGE and "no such file" in proc.stderr
    write(tmp_path / "outside.csv", "x")
    proc = run_tether(repo, "add", str(tmp_path / "outside.csv"))
    assert proc.returncode == EXIT_USAGE and "outside the project" in proc.stderr


def test_a_hostile_pointer_is_refused(repo: Path, tmp_path: Path) -> None:
    write(repo / "evil.tether", "path: ../../escaped\nkey: b3:" + "0" * 64 + "\n")
    proc = run_tether(repo, "checkout")
    assert proc.returncode == EXIT_UNSAFE_PATH, proc.stderr
    assert not (tmp_path / "escaped").exists()


def test_tracked_data_travels_through_push_and_a_fresh_clone(repo: Path, tmp_path: Path) -> None:
    store, origin = tmp_path / "store", tmp_path / "origin.git"
    ok(repo, "remote", "add", "store", str(store), "--default")
    write(repo / "data" / "raw.csv", "payload\n" * 100)
    ok(repo, "add", "data/raw.csv")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    ok(repo, "push")  # no experiment yet: the data alone
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "data" / "raw.csv").exists()
    ok(clone, "checkout")
    assert (clone / "data" / "raw.csv").read_text() == "payload\n" * 100


def test_gc_keeps_tracked_data(repo: Path) -> None:
    write(repo / "data" / "raw.csv", "keep me\n")
    ok(repo, "add", "data/raw.csv")
    write(repo / "tether.yaml", "stages:\n  use:\n    cmd: cat data/raw.csv\n"
          "    deps: [data/raw.csv]\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    ok(repo, "run", "-n", "used")
    # A newer version of the data, added but not committed, is kept too.
    write(repo / "data" / "raw.csv", "newer\n")
    ok(repo, "add", "data/raw.csv")
    ok(repo, "gc")
    (repo / "data" / "raw.csv").unlink()
    ok(repo, "checkout")
    assert (repo / "data" / "raw.csv").read_text() == "newer\n"
    git(repo, "checkout", "-q", "--", "data/raw.csv.tether")  # the committed pointer
    (repo / "data" / "raw.csv").unlink()
    ok(repo, "checkout")
    assert (repo / "data" / "raw.csv").read_text() == "keep me\n"


def test_the_commit_hint_is_a_command_that_commits_everything_add_wrote(repo: Path) -> None:
    """The printed `git add` names each pointer and the .gitignore add wrote beside each
    path (not the root one), quoted, so pasting it leaves nothing uncommitted."""
    write(repo / "data" / "raw set.csv", "a\n1\n")
    write(repo / "raw imgs" / "ïmg 1.png", "1")
    proc = run_tether(repo, "add", "data/raw set.csv", "raw imgs")
    assert proc.returncode == 0, proc.stderr
    hint = proc.stderr.split("commit the pointers: ", 1)[1].splitlines()[0]
    assert hint.startswith("git add ")
    subprocess.run(hint, shell=True, cwd=repo, check=True)
    status = git(repo, "status", "--porcelain", "-uall").splitlines()
    assert sorted(status) == ['A  "data/raw set.csv.tether"', 'A  "raw imgs.tether"',
                              "A  .gitignore", "A  data/.gitignore"]  # all staged, nothing left
