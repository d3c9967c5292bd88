"""`tether apply` writes files the way `git checkout` would: smudge filters, line endings,
sparse checkouts and odd file names (issue "Behave like git in every repository state")."""

from __future__ import annotations

import codecs
import subprocess
from pathlib import Path

from conftest import git, run_tether, write
from security.crafted import plant_experiment


def _blob_of(root: Path, path: str, data: bytes) -> bytes:
    """What `git add` would store for `data` at `path` (clean filters applied)."""
    sha = subprocess.run(["git", "hash-object", "-w", "--stdin", "--path", path], cwd=root,
                         input=data, capture_output=True, check=True).stdout.decode().strip()
    return subprocess.run(["git", "cat-file", "blob", sha], cwd=root, capture_output=True,
                          check=True).stdout


def test_apply_runs_smudge_filters(repo: Path) -> None:
    """An encrypting filter (rot13 here): the work tree gets plaintext, as git gives it."""
    git(repo, "config", "filter.rot.clean", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.smudge", "tr a-z n-za-m")
    write(repo / ".gitattributes", "secret.txt filter=rot\n")
    write(repo / "secret.txt", "hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "filtered")
    stored = _blob_of(repo, "secret.txt", b"attack at dawn\n")
    assert stored == codecs.encode("attack at dawn\n", "rot13").encode()
    plant_experiment(repo, "enc", {".gitattributes": b"secret.txt filter=rot\n",
                                   "README.md": b"test project\n", "secret.txt": stored})

    proc = run_tether(repo, "apply", "enc")

    assert proc.returncode == 0, proc.stderr
    assert (repo / "secret.txt").read_bytes() == b"attack at dawn\n"
    assert git(repo, "diff", "--stat") .count("secret.txt") == 1  # content changed, not bytes


def test_apply_keeps_crlf_line_endings(repo: Path) -> None:
    write(repo / ".gitattributes", "*.txt text eol=crlf\n")
    (repo / "data.txt").write_bytes(b"one\r\ntwo\r\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "crlf")
    plant_experiment(repo, "eol", {".gitattributes": b"*.txt text eol=crlf\n",
                                   "README.md": b"test project\n",
                                   "data.txt": b"one\ntwo\nthree\n"})

    proc = run_tether(repo, "apply", "eol")

    assert proc.returncode == 0, proc.stderr
    assert (repo / "data.txt").read_bytes() == b"one\r\ntwo\r\nthree\r\n"
    assert git(repo, "diff", "--numstat") == "1\t0\tdata.txt"  # one line added, no rewrite


def test_apply_leaves_paths_outside_a_sparse_checkout_alone(repo: Path) -> None:
    write(repo / "in" / "a.txt", "a\n")
    write(repo / "out" / "b.txt", "b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two dirs")
    git(repo, "sparse-checkout", "set", "--cone", "in")
    assert not (repo / "out").exists()
    plant_experiment(repo, "sparse", {"README.md": b"test project\n",
                                      "in": {"a.txt": b"a2\n"},
                                      "out": {"b.txt": b"b2\n", "new.txt": b"n\n"}})

    proc = run_tether(repo, "apply", "sparse")

    assert proc.returncode == 0, proc.stderr
    assert (repo / "in" / "a.txt").read_text() == "a2\n"
    assert not (repo / "out").exists()
    assert "S out/b.txt" in git(repo, "ls-files", "-t")  # skip-worktree bit kept
    assert "outside this sparse checkout" in proc.stderr


def test_apply_handles_odd_file_names(repo: Path) -> None:
    odd = ['"quoted', "new\nline", "HEAD", "-dash", "*star", ":(top)magic", "sp ace"]
    for name in odd:
        (repo / name).write_text("old\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd names")
    plant_experiment(repo, "odd", {"README.md": b"test project\n",
                                   **{name: f"new {i}\n".encode() for i, name in enumerate(odd)}})

    proc = run_tether(repo, "apply", "odd")

    assert proc.returncode == 0, proc.stderr
    for i, name in enumerate(odd):
        assert (repo / name).read_text() == f"new {i}\n", name
    git(repo, "add", "-A")
    assert git(repo, "status", "--porcelain") .count("\n") + 1 == len(odd)
