"""What a push or pull says when the git remote refuses, when a name is an experiment and not a
remote, and what gc does with uploads a killed push left on an artifact remote."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import git, run_tether, write
from helpers import exp_refs
from share.conftest import run_exp, tether_ok
from tether.cache.sweep import STALE_TMP
from tether.experiments.gc import gc


def refuse_pushes(origin: Path) -> None:
    hook = write(origin / "hooks" / "pre-receive",
                 "#!/bin/sh\necho 'experiments need a ticket number' >&2\nexit 1\n")
    hook.chmod(0o755)


def test_push_refused_by_a_hook_is_transfer_rejected_with_the_remotes_words(
    alice: Path, origin: Path,
) -> None:
    run_exp(alice, "refused", 1)
    refuse_pushes(origin)
    for extra in ((), ("--force",)):
        proc = run_tether(alice, "push", *extra)
        assert proc.returncode == 12, proc.stderr
        assert "experiments need a ticket number" in proc.stderr
        assert "refused 1 experiment ref" in proc.stderr
        assert "diverged" not in proc.stderr + proc.stdout
        assert "rejected" in proc.stdout and "refused" in proc.stdout
    assert git(alice, "ls-remote", "origin", "refs/tether/*") == ""
    assert not list((alice.parent / "artifacts").rglob("*.json"))  # nothing of it moved


def test_real_divergence_is_still_diverged_not_rejected(alice: Path, bob: Path) -> None:
    run_exp(alice, "clash", 1)
    run_exp(bob, "clash", 2)
    tether_ok(alice, "push")
    proc = run_tether(bob, "push")
    assert proc.returncode == 9, proc.stderr
    assert "diverged" in proc.stdout and "refused" not in proc.stderr


def test_push_and_pull_take_a_lone_experiment_name_that_is_no_remote(
    alice: Path, bob: Path,
) -> None:
    run_exp(alice, "clone-run", 1)
    run_exp(alice, "other-run", 2)
    out = tether_ok(alice, "push", "clone-run")
    assert "1 new" in out and "clone-run" in out and "other-run" not in out
    assert [r.rsplit("/", 1)[1] for r in git(alice, "ls-remote", "origin", "refs/tether/*")
            .splitlines()] == ["clone-run"]
    assert "1 new" in tether_ok(alice, "push", "origin", "other-run")
    pulled = tether_ok(bob, "pull", "other-run")
    assert "1 new" in pulled and "0 object(s) sent" not in pulled
    assert "object(s) received" in pulled
    assert [r.rsplit("/", 1)[1] for r in exp_refs(bob)] == ["other-run"]
    wrong = run_tether(alice, "push", "no-such-thing")
    assert wrong.returncode == 2, wrong.stderr
    assert "neither a git remote nor an experiment" in wrong.stderr


def test_checkout_without_remote_does_not_offer_a_flag_it_lacks(alice: Path, bob: Path) -> None:
    run_exp(alice, "elsewhere", 1)
    tether_ok(alice, "push")
    tether_ok(bob, "pull", "--no-artifacts")
    (bob / ".tether" / "config.yaml").unlink()  # no artifact remote on this side
    proc = run_tether(bob, "checkout", "elsewhere")
    assert proc.returncode == 8, proc.stderr
    assert "--no-artifacts" not in proc.stderr
    assert "not in the local cache" in proc.stderr and "tether remote add" in proc.stderr


def test_gc_remote_removes_stale_uploads_of_killed_pushes(alice: Path) -> None:
    run_exp(alice, "kept", 1)
    tether_ok(alice, "push")
    objects = alice.parent / "artifacts" / "objects"
    folder = next(p for p in objects.rglob("*") if p.is_dir())
    stale = write(folder / ".tmp-0123abcd", "half an upload")
    fresh = write(objects.parent / "runs" / ".tmp-4567ef01", "an upload under way")
    now = time.time()
    os.utime(stale, (now - STALE_TMP - 60, now - STALE_TMP - 60))
    dry = gc(alice, remote="store", dry=True, now=now)
    assert dry.tmp_removed == [str(stale)] and stale.exists()
    result = gc(alice, remote="store", now=now)
    assert result.tmp_removed == [str(stale)]
    assert not stale.exists() and fresh.exists()
    assert result.removed == []  # the kept experiment's objects stay
    later = gc(alice, remote="store", now=now + STALE_TMP + 120)
    assert later.tmp_removed == [str(fresh)] and not fresh.exists()
    out = tether_ok(alice, "gc", "--remote", "store")
    assert "unfinished upload" not in out
