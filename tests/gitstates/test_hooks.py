"""tether's own git calls run no user hook; the user's stages still get their git."""

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
    tether,
)

HOOKS = ("post-checkout", "reference-transaction", "pre-commit", "post-commit")


def _install_failing_hooks(root: Path, log: Path) -> None:
    hooks = root / ".git" / "hooks"
    for name in HOOKS:
        write(hooks / name, f"#!/bin/sh\necho {name} >> '{log}'\nexit 1\n").chmod(0o755)


def test_failing_hooks_of_every_kind_break_no_run(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    write(repo / "data" / "raw.csv", "x,y\n5,6\n")  # uncommitted
    write(repo / "notes.md", "new\n")  # untracked
    log = tmp_path / "hooks.log"
    _install_failing_hooks(repo, log)
    before = snapshot_state(repo)

    records = run_every_way(repo)

    assert sorted(records) == ["bare", "inplace", "queued", "temp", "tempbare"]
    for name in records:
        assert_stored_as_git_add(repo, exp_ref(repo, name), ["data/raw.csv", "notes.md"])
    assert not log.exists(), log.read_text()  # no hook ran inside tether
    assert_repo_untouched(repo, before)


def test_stages_still_see_the_users_hooks(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    log = tmp_path / "hooks.log"
    hook = repo / ".git" / "hooks" / "post-checkout"
    write(hook, f"#!/bin/sh\necho ran >> '{log}'\n").chmod(0o755)
    # A stage that uses git itself: its post-checkout hook runs as the user set it up.
    cmd = ["sh", "-c", f"git worktree add -q --detach '{tmp_path / 'wt'}' HEAD && "
           "test -z \"$GIT_CONFIG_COUNT\""]
    tether(repo, "run", "-n", "usesgit", "--", *cmd)
    assert log.read_text() == "ran\n"
    git(repo, "worktree", "remove", "--force", str(tmp_path / "wt"))


def test_tether_push_runs_the_users_pre_push_hook(repo: Path, tmp_path: Path) -> None:
    # Like `git push`: git-lfs uploads the LFS objects of the pushed records there.
    make_project(repo)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    log = tmp_path / "hooks.log"
    write(repo / ".git" / "hooks" / "pre-push", f"#!/bin/sh\necho pre-push >> '{log}'\n"
          ).chmod(0o755)
    tether(repo, "run", "-n", "shared")
    assert not log.exists()
    tether(repo, "push", "--no-artifacts", "origin", "shared")
    assert log.read_text() == "pre-push\n"
    assert git(remote, "for-each-ref", "--format=%(refname)").endswith("/shared")
