"""Submodules: recorded at the commit checked out, present in temporary and queue worktrees."""

from __future__ import annotations

from pathlib import Path

from conftest import git, write
from gitstates.conftest import (
    assert_repo_untouched,
    exp_ref,
    make_project,
    run_every_way,
    snapshot_state,
    tether,
)
from helpers import record_of


def _project_with_submodule(repo: Path, tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    write(lib / "table.csv", "a,b\n1,2\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib v1")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "sub")
    # The submodule's URL is unreachable (no network here, nor in CI): worktrees must
    # check it out from the local clone.
    unreachable = "https://example.invalid/lib.git"
    git(repo, "config", "-f", ".gitmodules", "submodule.sub.url", unreachable)
    git(repo, "config", "submodule.sub.url", unreachable)
    make_project(repo, deps=["data/raw.csv", "sub/table.csv"])
    return repo / "sub"


def test_submodule_moved_and_dirty_is_recorded_at_its_commit(repo: Path, tmp_path: Path) -> None:
    sub = _project_with_submodule(repo, tmp_path)
    pinned = git(repo, "rev-parse", "HEAD:sub")
    # The user moves the submodule to a new commit (not committed in the superproject)...
    write(sub / "table.csv", "a,b\n1,2\n3,4\n5,6\n")
    git(sub, "commit", "-q", "-am", "lib v2")
    moved = git(sub, "rev-parse", "HEAD")
    assert moved != pinned
    before = snapshot_state(repo)

    records = run_every_way(repo)

    for name, record in records.items():
        ref = exp_ref(repo, name)
        assert git(repo, "ls-tree", ref, "sub").split()[:3] == ["160000", "commit", moved], name
        assert record["code"]["submodules"]["commits"] == {"sub": moved}  # type: ignore[index]
    # The stage saw the moved submodule's table everywhere, --temp and queue included.
    sizes = {name: r["metrics"] for name, r in records.items() if "bare" not in name}
    assert len({str(m) for m in sizes.values()}) == 1, sizes
    assert_repo_untouched(repo, before)

    # ...and now leaves uncommitted changes in it: recorded as the commit, with a warning.
    write(sub / "table.csv", "changed but not committed\n")
    for args in (["-n", "dirty"], ["--temp", "-n", "dirtytemp"]):
        proc = tether(repo, "run", *args)
        assert "warning: uncommitted changes inside submodule sub" in proc.stderr, args
    ref = exp_ref(repo, "dirty")
    assert git(repo, "ls-tree", ref, "sub").split()[2] == moved
    assert record_of(repo, ref)["code"]["submodules"]["dirty"] == ["sub"]


def test_unchanged_submodule_in_temp_and_queue(repo: Path, tmp_path: Path) -> None:
    _project_with_submodule(repo, tmp_path)
    pinned = git(repo, "rev-parse", "HEAD:sub")
    before = snapshot_state(repo)
    records = run_every_way(repo)
    for name, record in records.items():
        assert git(repo, "ls-tree", exp_ref(repo, name), "sub").split()[2] == pinned
        assert "submodules" not in record["code"]  # type: ignore[operator]
    assert_repo_untouched(repo, before)
