"""Files named like revisions, options or pathspec magic are just files to tether."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from gitstates.conftest import (
    assert_repo_untouched,
    assert_stored_as_git_add,
    exp_ref,
    make_project,
    run_every_way,
    snapshot_state,
)

TRACKED = ["HEAD", "main", "-n", "--all", ":(exclude)x", "with space.txt", "*.csv",
           "ümlaut.txt", "dir/HEAD~1"]
UNTRACKED = ["new HEAD", "-rf", "tab\tname", "line\nbreak", "@{-1}", "new\\back"]


def test_odd_file_names_everywhere(repo: Path) -> None:
    for name in TRACKED:
        write(repo / name, f"{name} v1\n")
    make_project(repo)
    for name in TRACKED:
        write(repo / name, f"{name} v2\n")  # every odd tracked file is modified
    for name in UNTRACKED:
        write(repo / name, f"{name}\n")
    before = snapshot_state(repo)

    records = run_every_way(repo)

    for name in records:
        ref = exp_ref(repo, name)
        assert_stored_as_git_add(repo, ref, TRACKED + UNTRACKED)
    assert_repo_untouched(repo, before)


def test_odd_names_with_attributes(repo: Path) -> None:
    # The same names through the clean-filter path (check-attr and hash-object).
    git(repo, "config", "filter.rot.clean", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.smudge", "tr a-z n-za-m")
    write(repo / ".gitattributes", "* filter=rot\n.gitattributes -filter\n")
    for name in TRACKED:
        write(repo / name, f"{name} plain\n")
    make_project(repo)
    for name in TRACKED:
        write(repo / name, f"{name} changed\n")
    for name in UNTRACKED:
        write(repo / name, f"{name} secret\n")
    before = snapshot_state(repo)
    records = run_every_way(repo, queue=False)
    for name in records:
        assert_stored_as_git_add(repo, exp_ref(repo, name), TRACKED + UNTRACKED)
    assert_repo_untouched(repo, before)
