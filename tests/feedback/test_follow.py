"""Push to run without a CI server: `tether worker --follow` and `tether run --push --wait`,
on real clones of a bare remote, with a real pipeline (two stages, an output folder,
metrics with rules, a failing variant)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import repo_state
from tether.layout import CLAIMS_REFS, EXPS_REFS
from tether.queue.follow import Follower, parse_stages, skips

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [features]
  train:
    cmd: python train.py
    deps: [train.py, features]
    params: [train]
    metrics: [metrics.json]
metrics:
  acc: {direction: max, tolerance: 1%, warn: 3%}
  loss: {direction: min, tolerance: 0.02}
"""

PREPARE = """\
import os
os.makedirs("features", exist_ok=True)
rows = open("data/raw.csv").read().splitlines()
open("features/rows.txt", "w").write(str(len(rows)))
"""

TRAIN = """\
import json, tether
p = tether.params()["train"]
if p["lr"] > 1:
    raise SystemExit("diverged: lr too high")
json.dump({"acc": round(0.9 - abs(p["lr"] - 0.1), 4), "loss": round(0.3 + p["lr"], 4)},
          open("metrics.json", "w"))
"""


def remote_refs(bare: Path, prefix: str) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return dict(line.split(" ") for line in out.splitlines() if line)


def record(root: Path, ref: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(git(root, "show", f"{ref}:.tether/record.json"))
    return data


@pytest.fixture
def world(repo: Path, tmp_path: Path) -> dict[str, Path]:
    """origin (bare) with main and its main build; `dev` (the user's clone) and two
    follower clones."""
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1\n")
    write(repo / "prepare.py", PREPARE)
    write(repo / "train.py", TRAIN)
    write(repo / "data" / "raw.csv", "a,b\n1,2\n3,4\n")
    write(repo / ".gitignore", "metrics.json\nfeatures/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    proc = run_tether(repo, "run", "-q", "-n", "main-build")
    assert proc.returncode == 0, proc.stderr
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    assert run_tether(repo, "push", "--no-artifacts").returncode == 0
    found = {"origin": bare, "dev": repo}
    for name in ("follower", "follower2"):
        git(tmp_path, "clone", "-q", f"file://{bare}", str(tmp_path / name))
        found[name] = tmp_path / name
    return found


def push_branch(dev: Path, branch: str, lr: float, message: str) -> str:
    git(dev, "switch", "-q", "-c", branch, "main")
    write(dev / "params.yaml", f"train:\n  lr: {lr}\n")
    git(dev, "commit", "-q", "-am", message)
    git(dev, "push", "-q", "origin", branch)
    sha = git(dev, "rev-parse", "HEAD")
    git(dev, "switch", "-q", "main")
    return sha


def test_trailers_and_markers() -> None:
    assert parse_stages("try\n\nTether-Stages: train, eval\n") == ["train", "eval"]
    assert parse_stages("tether-stages: prepare\n") == ["prepare"]
    assert parse_stages("no trailer") is None
    assert skips("docs only [skip tether]") and skips("[Skip Tether]")
    assert not skips("tether all the things")


def test_follow_once_runs_new_branches_skips_and_pushes_back(world: dict[str, Path]) -> None:
    dev, bare, follower = world["dev"], world["origin"], world["follower"]
    good = push_branch(dev, "exp/lr-small", 0.12, "try lr 0.12")
    skipped = push_branch(dev, "exp/docs", 0.5, "just docs [skip tether]")
    partial = push_branch(dev, "exp/prep", 0.13, "features only\n\nTether-Stages: prepare")
    broken = push_branch(dev, "exp/diverge", 5.0, "lr 5")
    git(dev, "push", "-q", "origin", "main:refs/heads/feature/x")  # not followed
    before = repo_state(follower)

    proc = run_tether(follower, "worker", "--follow", "origin", "--once", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # exp/diverge failed
    assert "exp/docs" in proc.stderr and "[skip tether]" in proc.stderr

    exps = remote_refs(bare, EXPS_REFS)
    assert f"{EXPS_REFS}{good}/lr-small" in exps
    assert f"{EXPS_REFS}{partial}/prep" in exps
    assert f"{EXPS_REFS}{broken}/diverge" in exps
    assert not any(skipped in ref for ref in exps)
    assert set(remote_refs(bare, CLAIMS_REFS)) == {
        f"{CLAIMS_REFS}{c}" for c in (good, partial, broken)}
    # The result and the verdict: the run, gated against main's build (acc -2%: warned).
    rec = record(follower, f"{EXPS_REFS}{good}/lr-small")
    assert rec["status"] == "success"
    assert "WARNED" in proc.stdout and "main-build" in proc.stdout
    assert "tether: gate warned" in git(bare, "log", "-1", "--format=%B",
                                        f"{CLAIMS_REFS}{good}")
    # Tether-Stages: only prepare ran.
    stages = record(follower, f"{EXPS_REFS}{partial}/prep")["stages"]
    assert [s["name"] for s in stages] == ["prepare"]  # type: ignore[attr-defined,index]
    assert record(follower, f"{EXPS_REFS}{broken}/diverge")["status"] == "failed"
    assert "FAILED" in proc.stdout
    assert repo_state(follower) == before  # the follower's own checkout is untouched

    # A second pass finds nothing new and runs nothing.
    again = run_tether(follower, "worker", "--follow", "origin", "--once")
    assert again.returncode == 0, again.stderr
    assert "event=push_queued" not in again.stderr
    assert "event=worker_stopped" in again.stderr and "ran=0" in again.stderr
    assert remote_refs(bare, EXPS_REFS) == exps

    # Another follower, new to this remote, finds them all run (or opted out).
    other = run_tether(world["follower2"], "worker", "--follow", "origin", "--once")
    assert other.returncode == 0, other.stderr
    assert other.stderr.count("already has an experiment") == 3, other.stderr
    assert "event=push_queued" not in other.stderr

    # A new commit on a followed branch is a new experiment.
    git(dev, "switch", "-q", "exp/lr-small")
    write(dev / "params.yaml", "train:\n  lr: 0.1\n")
    git(dev, "commit", "-q", "-am", "back to 0.1")
    git(dev, "push", "-q", "origin", "exp/lr-small")
    newer = git(dev, "rev-parse", "HEAD")
    third = run_tether(follower, "worker", "--follow", "origin", "--once",
                       "--branches", "exp/lr-*", timeout=300)
    assert third.returncode == 0, third.stderr
    assert f"{EXPS_REFS}{newer}/lr-small" in remote_refs(bare, EXPS_REFS)
    assert "PASSED" in third.stdout


def test_two_followers_run_a_commit_once(world: dict[str, Path]) -> None:
    dev, bare = world["dev"], world["origin"]
    sha = push_branch(dev, "exp/race", 0.11, "race")
    procs = [subprocess.Popen([sys.executable, "-m", "tether", "worker", "--follow", "origin",
                               "--once"], cwd=world[name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for name in ("follower", "follower2")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [ref for ref in remote_refs(bare, EXPS_REFS) if sha in ref] == [
        f"{EXPS_REFS}{sha}/race"]
    ran = [name for name, (_, err) in zip(("follower", "follower2"), outs, strict=True)
           if re.search(r"event=push_queued .*exp=race", err)]
    assert len(ran) == 1, outs
    other = "follower2" if ran == ["follower"] else "follower"
    assert not git(world[other], "for-each-ref", f"{EXPS_REFS}{sha}")


def test_claims_are_create_only(world: dict[str, Path]) -> None:
    sha = push_branch(world["dev"], "exp/claimed", 0.2, "claim me")
    for name in ("follower", "follower2"):
        git(world[name], "fetch", "-q", "origin", "exp/claimed")
    first = Follower(world["follower"], "origin")
    second = Follower(world["follower2"], "origin")
    assert first.claim([sha]) == {sha}
    assert second.claim([sha]) == set()
    assert first.claim([sha]) == set()  # not even the winner claims twice


def _repo_state_with_stash(root: Path) -> dict[str, str]:
    state = repo_state(root)
    state["diff"] = git(root, "diff")
    return state


def test_run_push_wait_against_a_follower(world: dict[str, Path]) -> None:
    dev, bare = world["dev"], world["origin"]
    write(dev / "params.yaml", "train:\n  lr: 0.3\n")  # uncommitted: acc -20%, regressed
    before = _repo_state_with_stash(dev)
    follower = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", "--follow", "origin", "--interval", "0.3"],
        cwd=world["follower"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc = run_tether(dev, "run", "--push", "-n", "higher-lr", "--wait", timeout=300)
    finally:
        follower.send_signal(signal.SIGTERM)
        _, f_err = follower.communicate(timeout=60)
    assert proc.returncode == 16, proc.stdout + proc.stderr + f_err  # gate: regressed
    assert "exp/higher-lr" in proc.stderr and "tether worker --follow" in proc.stderr
    assert "REGRESSED" in proc.stdout and "acc" in proc.stdout
    commit = remote_refs(bare, "refs/heads/exp/")["refs/heads/exp/higher-lr"]
    # The snapshot: HEAD plus the uncommitted change, HEAD as parent, a trailer.
    assert git(dev, "rev-parse", f"{commit}^") == git(dev, "rev-parse", "HEAD")
    assert "lr: 0.3" in git(dev, "show", f"{commit}:params.yaml")
    assert "Tether-Push: higher-lr" in git(dev, "log", "-1", "--format=%B", commit)
    # Pulled: the result is here, recorded against the pushed commit.
    assert record(dev, f"{EXPS_REFS}{commit}/higher-lr")["status"] == "success"
    assert _repo_state_with_stash(dev) == before  # HEAD, branches, index, changes untouched
    assert follower.returncode == 0, f_err


def test_run_push_without_wait_says_how_to_get_the_result(world: dict[str, Path]) -> None:
    dev, bare = world["dev"], world["origin"]
    proc = run_tether(dev, "run", "--push", "origin", "train", "-n", "only-train")
    assert proc.returncode == 0, proc.stderr
    commit = remote_refs(bare, "refs/heads/exp/")["refs/heads/exp/only-train"]
    assert "Tether-Stages: train" in git(dev, "log", "-1", "--format=%B", commit)
    assert "tether pull" in proc.stderr
    again = run_tether(dev, "run", "--push", "-n", "only-train")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not git(dev, "for-each-ref", "refs/heads/exp")  # no local branch


def test_follow_needs_a_reachable_remote(world: dict[str, Path], tmp_path: Path) -> None:
    proc = run_tether(world["follower"], "worker", "--follow", str(tmp_path / "nowhere"),
                      "--once")
    assert proc.returncode not in (0, 70), proc.stderr
    assert "cannot list the branches" in proc.stderr
    bad = run_tether(world["follower"], "worker", "--once")
    assert bad.returncode == 2 and "--follow" in bad.stderr
    assert os.path.isdir(world["follower"])


def test_gc_remote_branches_deletes_only_old_recorded_pushes(world: dict[str, Path]) -> None:
    dev, bare, follower = world["dev"], world["origin"], world["follower"]
    old = {"GIT_COMMITTER_DATE": "2020-01-01T00:00:00+0000"}
    for name, env in (("old", old), ("fresh", {}), ("real", old)):
        proc = run_tether(dev, "run", "--push", "-n", name, env=env)
        assert proc.returncode == 0, proc.stderr
    # Someone turns exp/real into a real branch: a commit on top, run by the follower too.
    human = world["follower2"]
    git(human, "fetch", "-q", "origin", "exp/real")
    git(human, "switch", "-q", "-c", "exp/real", "FETCH_HEAD")
    write(human / "train.py", TRAIN + "# tuned\n")
    subprocess.run(["git", "commit", "-q", "-am", "keep this one"], cwd=human, check=True,
                   env={**os.environ, **old})  # as old as exp/old, but a real commit
    git(human, "push", "-q", "origin", "exp/real")
    assert run_tether(follower, "worker", "--follow", "origin", "--once",
                      timeout=300).returncode == 0
    proc = run_tether(dev, "run", "--push", "-n", "pending", env=old)  # no result yet
    assert proc.returncode == 0, proc.stderr
    exps = remote_refs(bare, EXPS_REFS)

    dry = run_tether(dev, "gc", "--remote-branches", "--older-than", "14d", "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "would delete  exp/old" in dry.stdout and dry.stdout.count("exp/") == 1
    assert "refs/heads/exp/old" in remote_refs(bare, "refs/heads/exp/")
    done = run_tether(dev, "gc", "--remote-branches", "origin", "--older-than", "14d")
    assert done.returncode == 0, done.stderr
    assert set(remote_refs(bare, "refs/heads/exp/")) == {
        "refs/heads/exp/fresh", "refs/heads/exp/real", "refs/heads/exp/pending"}
    assert remote_refs(bare, EXPS_REFS) == exps  # results stay


def test_a_following_worker_notifies_a_failure_and_a_regression_once(
    world: dict[str, Path],
) -> None:
    from feedback.receivers import http_receiver

    dev, follower = world["dev"], world["follower"]
    push_branch(dev, "exp/fine", 0.105, "about the same as main")
    push_branch(dev, "exp/diverge", 5.0, "lr 5")
    push_branch(dev, "exp/worse", 0.3, "lr 0.3: acc 0.7 against main's 0.9")
    with http_receiver() as receiver:
        proc = run_tether(follower, "worker", "--follow", "origin", "--once",
                          env={"TETHER_NOTIFY": receiver.url()}, timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # exp/diverge failed
        received = receiver.wait_for(2)
    by_event = {r.json()["event"]: r.json() for r in received}
    assert len(received) == 2 and set(by_event) == {"failed", "regressed"}
    assert "diverge" in by_event["failed"]["title"]
    assert "diverged: lr too high" in by_event["failed"]["message"]
    assert "worse" in by_event["regressed"]["title"]
    assert "acc" in by_event["regressed"]["message"]


# -- worker tags: a follower claims only what its tags can run ---------------------------

GPU_SPEC = SPEC.replace("    params: [train]\n", "    params: [train]\n    require: [gpu]\n")


def push_spec(dev: Path, branch: str, files: dict[str, str], message: str) -> str:
    """Push `branch` from main with `files` written (a file's text "" deletes it)."""
    git(dev, "switch", "-q", "-c", branch, "main")
    for name, text in files.items():
        if text:
            write(dev / name, text)
        else:
            (dev / name).unlink()
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "-m", message)
    git(dev, "push", "-q", "origin", branch)
    sha = git(dev, "rev-parse", "HEAD")
    git(dev, "switch", "-q", "main")
    return sha


def queued(root: Path) -> list[dict[str, object]]:
    proc = run_tether(root, "queue", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_followers_claim_only_what_their_tags_can_run(world: dict[str, Path]) -> None:
    dev, bare = world["dev"], world["origin"]
    needs_gpu = push_spec(dev, "exp/on-gpu", {"tether.yaml": GPU_SPEC}, "train on a gpu")
    plain = push_branch(dev, "exp/plain", 0.11, "no tags needed")
    names = ("follower", "follower2")
    tags = {"follower": [], "follower2": ["--tags", "gpu"]}
    procs = [subprocess.Popen([sys.executable, "-m", "tether", "worker", "--follow", "origin",
                               "--once", *tags[name]], cwd=world[name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for name in names]
    outs = dict(zip(names, (p.communicate(timeout=300) for p in procs), strict=True))
    assert all(p.returncode == 0 for p in procs), outs
    plain_err, gpu_err = outs["follower"][1], outs["follower2"][1]
    exps = remote_refs(bare, EXPS_REFS)
    assert [ref for ref in exps if needs_gpu in ref] == [f"{EXPS_REFS}{needs_gpu}/on-gpu"]
    assert [ref for ref in exps if plain in ref] == [f"{EXPS_REFS}{plain}/plain"]
    # The gpu commit: run by the gpu follower; the plain one left it, saying why — unless
    # the gpu follower had claimed it before the plain one's pass looked (the two race).
    seen = [line for line in plain_err.splitlines() if "branch=exp/on-gpu" in line]
    assert len(seen) == 1, plain_err
    assert ("event=push_left" in seen[0] and "missing=gpu" in seen[0]) or (
        "event=push_skipped" in seen[0] and "claimed by another follower" in seen[0]), plain_err
    assert not re.search(r"event=push_queued .*exp=on-gpu", plain_err)
    assert re.search(r"event=push_queued .*exp=on-gpu.*requires=gpu", gpu_err), gpu_err
    assert not git(world["follower"], "for-each-ref", f"{EXPS_REFS}{needs_gpu}")
    assert record(world["follower2"], f"{EXPS_REFS}{needs_gpu}/on-gpu")["status"] == "success"
    # The plain commit: run by exactly one of them.
    ran = [name for name in names if re.search(r"event=push_queued .*exp=plain", outs[name][1])]
    assert len(ran) == 1, outs
    # The entries carry the requirements, as `run --queue` entries do.
    entries = {e["name"]: e for name in names for e in queued(world[name])}
    assert entries["on-gpu"]["requires"] == ["gpu"]
    assert entries["plain"]["requires"] == []
    assert not any(e["name"] == "on-gpu" for e in queued(world["follower"]))


def test_a_left_commit_is_reported_once_and_taken_after_a_restart_with_tags(
    world: dict[str, Path],
) -> None:
    from tether.queue.client import open_queue

    dev, follower = world["dev"], world["follower"]
    needs_gpu = push_spec(dev, "exp/on-gpu", {"tether.yaml": GPU_SPEC}, "train on a gpu")
    # Only `prepare` (no tag needed) is selected: the trailer's stages decide.
    prep = push_spec(dev, "exp/prep-only", {"tether.yaml": GPU_SPEC},
                     "features\n\nTether-Stages: prepare")
    backend = open_queue(follower, backend="embedded")
    try:
        plain = Follower(follower, "origin")
        first = plain.follow_once(backend)
        assert [(p.commit, needs) for p, needs in first.left] == [(needs_gpu, ("gpu",))]
        assert [(e.snapshot, e.requires) for e in first.entries] == [(prep, ())]
        again = plain.follow_once(backend)  # the next pass: nothing new, nothing reported
        assert not again.left and not again.entries and not again.skipped
        assert not git(world["origin"], "for-each-ref", f"{CLAIMS_REFS}{needs_gpu}")
        # Restarted with the tag (a new follower on the same clone): not marked seen.
        gpu = Follower(follower, "origin", tags=["gpu"])
        taken = gpu.follow_once(backend)
        assert [(e.snapshot, e.requires) for e in taken.entries] == [(needs_gpu, ("gpu",))]
        assert git(world["origin"], "for-each-ref", f"{CLAIMS_REFS}{needs_gpu}")
    finally:
        backend.close()


def test_a_commit_whose_spec_cannot_be_read_is_claimed_as_before(
    world: dict[str, Path],
) -> None:
    from tether.queue.client import open_queue

    dev, follower = world["dev"], world["follower"]
    broken = push_spec(dev, "exp/broken", {"tether.yaml": "stages: [\n"}, "oops")
    unknown = push_spec(dev, "exp/typo", {"train.py": TRAIN + "#\n"},
                        "typo\n\nTether-Stages: trian")  # no such stage
    backend = open_queue(follower, backend="embedded")
    try:
        found = Follower(follower, "origin", tags=["cpu"]).follow_once(backend)
    finally:
        backend.close()
    problems = {p.commit: text for p, text in found.unreadable}
    assert set(problems) == {broken, unknown}
    assert "YAML syntax error" in problems[broken] and "trian" in problems[unknown]
    assert sorted((e.snapshot, e.requires) for e in found.entries) == sorted(
        [(broken, ()), (unknown, ())])
    assert not found.left


def test_a_python_spec_is_read_in_a_child_process(world: dict[str, Path]) -> None:
    from tether.queue.client import open_queue

    dev, follower = world["dev"], world["follower"]
    dsl = ("from tether.dsl import Pipeline, stage\n"
           "pipeline = Pipeline()\n"
           "pipeline.add(stage('train', cmd='python train.py', deps=['train.py'],\n"
           "                   require=['gpu', 'a100']))\n")
    sha = push_spec(dev, "exp/dsl", {"tether.yaml": "", "tetherfile.py": dsl}, "dsl spec")
    before = repo_state(follower)
    backend = open_queue(follower, backend="embedded")
    try:
        found = Follower(follower, "origin", tags=["gpu"]).follow_once(backend)
    finally:
        backend.close()
    assert [(p.commit, needs) for p, needs in found.left] == [(sha, ("a100", "gpu"))], found
    assert not found.unreadable and not found.entries
    after = repo_state(follower)  # but for the queue's database, which this test opened
    after["status"] = "".join(line for line in after["status"].splitlines(keepends=True)
                              if ".tether/queue.db" not in line)
    assert after == before
    assert not list((follower / ".tether" / "worktrees").glob("spec-*"))
