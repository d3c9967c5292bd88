"""Recording applies the clean filters `git add` applies: LFS, encryption, eol."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import git, write
from gitstates.conftest import (
    assert_repo_untouched,
    assert_stored_as_git_add,
    exp_ref,
    make_project,
    run_every_way,
    snapshot_state,
    tether,
)
from helpers import record_of


def _blobs(root: Path, ref: str) -> dict[str, bytes]:
    listing = git(root, "ls-tree", "-r", "-z", ref).split("\0")
    found = {}
    for line in filter(None, listing):
        meta, path = line.split("\t", 1)
        if meta.split()[1] == "blob":
            found[path] = subprocess.run(["git", "cat-file", "blob", meta.split()[2]], cwd=root,
                                         capture_output=True, check=True).stdout
    return found


def test_encrypting_filter_keeps_the_plaintext_out_of_every_record(repo: Path) -> None:
    # A git-crypt-like filter: what git stores is the "ciphertext" (rot13).
    git(repo, "config", "filter.rot.clean", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.smudge", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.required", "true")
    write(repo / ".gitattributes", "secrets/** filter=rot\n")
    write(repo / "secrets" / "db.txt", "user=admin\n")
    make_project(repo, deps=["data/raw.csv", "secrets/db.txt"])
    # Uncommitted: a changed encrypted file and a new one.
    write(repo / "secrets" / "db.txt", "user=admin password=hunter\n")
    write(repo / "secrets" / "api.txt", "token=swordfish\n")
    before = snapshot_state(repo)

    records = run_every_way(repo)

    for name in records:
        ref = exp_ref(repo, name)
        assert_stored_as_git_add(repo, ref, ["secrets/db.txt", "secrets/api.txt"])
        for path, data in _blobs(repo, ref).items():
            assert b"hunter" not in data and b"swordfish" not in data, (name, path)
    snapshot = next(r for r in git(repo, "for-each-ref", "--format=%(refname)",
                                   "refs/tether/queue/").splitlines())
    assert_stored_as_git_add(repo, snapshot, ["secrets/db.txt", "secrets/api.txt"])
    assert_repo_untouched(repo, before)


def test_eol_crlf_files_are_stored_with_lf(repo: Path) -> None:
    write(repo / ".gitattributes", "*.txt eol=crlf\n")
    (repo / "notes.txt").write_bytes(b"one\r\ntwo\r\n")
    make_project(repo, deps=["data/raw.csv", "notes.txt"])
    (repo / "notes.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    (repo / "new.txt").write_bytes(b"fresh\r\nfile\r\n")
    before = snapshot_state(repo)

    records = run_every_way(repo)

    for name in records:
        ref = exp_ref(repo, name)
        assert_stored_as_git_add(repo, ref, ["notes.txt", "new.txt"])
        blobs = _blobs(repo, ref)
        assert blobs["notes.txt"] == b"one\ntwo\nthree\n"
        assert blobs["new.txt"] == b"fresh\nfile\n"
    assert_repo_untouched(repo, before)


def test_autocrlf_without_attributes_is_applied(repo: Path) -> None:
    make_project(repo)
    git(repo, "config", "core.autocrlf", "true")
    (repo / "windows.txt").write_bytes(b"a\r\nb\r\n")
    tether(repo, "run", "-n", "inplace")
    tether(repo, "run", "--temp", "-n", "temp")
    for name in ("inplace", "temp"):
        ref = exp_ref(repo, name)
        assert_stored_as_git_add(repo, ref, ["windows.txt"])
        assert _blobs(repo, ref)["windows.txt"] == b"a\nb\n"


@pytest.mark.skipif(shutil.which("git-lfs") is None,
                    reason="git-lfs is not installed (scripts/ensure-services.sh installs it)")
def test_lfs_files_are_stored_as_pointers(repo: Path) -> None:
    git(repo, "lfs", "install", "--local")
    write(repo / ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "model.bin").write_bytes(b"\x01" * 300_000)
    make_project(repo, deps=["data/raw.csv", "model.bin"])
    assert git(repo, "cat-file", "-s", "HEAD:model.bin") != "300000"  # a pointer
    (repo / "model.bin").write_bytes(b"\x02" * 3_000_000)  # modified
    (repo / "extra.bin").write_bytes(b"\x03" * 500_000)  # new, untracked
    before = snapshot_state(repo)

    records = run_every_way(repo)

    for name in records:
        ref = exp_ref(repo, name)
        assert_stored_as_git_add(repo, ref, ["model.bin", "extra.bin"])
        blobs = _blobs(repo, ref)
        for path in ("model.bin", "extra.bin"):
            assert blobs[path].startswith(b"version https://git-lfs.github.com/spec/v1"), name
    assert records["temp"]["metrics"] == records["inplace"]["metrics"]
    assert records["queued"]["metrics"] == records["inplace"]["metrics"]
    snapshot = next(r for r in git(repo, "for-each-ref", "--format=%(refname)",
                                   "refs/tether/queue/").splitlines())
    assert_stored_as_git_add(repo, snapshot, ["model.bin", "extra.bin"])
    # The content itself is in the LFS store, as `git add` leaves it.
    assert git(repo, "lfs", "fsck") .endswith("OK")
    assert_repo_untouched(repo, before)


def test_a_secret_in_a_converted_file_is_scrubbed_before_git_converts_it(repo: Path) -> None:
    # Secret scrubbing and clean filters together: the stored blob is what `git add`
    # makes of the scrubbed content (here LF line endings), with no secret in it.
    token = "tok-5e5e5e5e5e5e"
    write(repo / ".gitattributes", "*.txt text eol=crlf\n")
    make_project(repo)
    (repo / "creds.txt").write_bytes(f"token={token}\r\nuser=me\r\n".encode())
    tether(repo, "run", "-n", "scrubbed", env={"MY_API_TOKEN": token})
    ref = exp_ref(repo, "scrubbed")
    stored = _blobs(repo, ref)["creds.txt"]
    assert token.encode() not in stored
    assert b"\r\n" not in stored and stored.endswith(b"user=me\n"), stored
    assert record_of(repo, ref)["redacted_files"] == {"creds.txt": ["MY_API_TOKEN"]}
