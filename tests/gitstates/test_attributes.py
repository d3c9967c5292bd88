"""The no-attributes fast path: stat calls alone decide that git converts nothing."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from tether.gitstore.attributes import may_convert


def test_may_convert_only_when_something_could_convert(repo: Path) -> None:
    paths = ["a.txt", "deep/down/b.txt"]
    assert not may_convert(repo, paths)  # a plain repository: no git process needed

    write(repo / "deep" / ".gitattributes", "*.txt text\n")
    assert may_convert(repo, paths)
    assert not may_convert(repo, ["a.txt", "other/c.txt"])  # not on these paths' way
    (repo / "deep" / ".gitattributes").unlink()

    write(repo / ".git" / "info" / "attributes", "*.bin filter=lfs\n")
    assert may_convert(repo, paths)
    (repo / ".git" / "info" / "attributes").unlink()

    git(repo, "config", "core.autocrlf", "input")
    assert may_convert(repo, paths)
    git(repo, "config", "--unset", "core.autocrlf")
    assert not may_convert(repo, paths)


def test_a_linked_worktree_reads_the_common_git_dir(repo: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    assert not may_convert(linked, ["README.md"])
    write(repo / ".git" / "info" / "attributes", "* text=auto\n")
    assert may_convert(linked, ["README.md"])
