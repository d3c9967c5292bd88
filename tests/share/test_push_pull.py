"""Push and pull experiments between two clones: refs through git, outputs through a remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import git, run_tether, write
from helpers import exp_refs
from share.conftest import run_exp, tether_ok
from tether.cache.runcache import RunCache
from tether.project import object_store


def _outputs_of(root: Path) -> dict[str, str]:
    return {
        "model.bin": (root / "model.bin").read_text(),
        **{f"features/{p.name}": p.read_text() for p in sorted((root / "features").iterdir())},
    }


def test_push_pull_checkout_through_a_directory_remote(alice: Path, bob: Path) -> None:
    run_exp(alice, "first", 1)
    run_exp(alice, "second", 2)
    second_outputs = _outputs_of(alice)
    out = tether_ok(alice, "push")
    assert "2 new" in out
    assert "object(s) sent" in out

    listed = tether_ok(bob, "ls-remote")
    assert "first" in listed and "second" in listed and "new" in listed
    assert not exp_refs(bob)  # ls-remote fetches nothing

    tether_ok(bob, "pull")
    assert exp_refs(bob) == exp_refs(alice)
    tether_ok(bob, "checkout", "second")
    assert _outputs_of(bob) == second_outputs

    # Run-cache entries travelled with the artifacts.
    fingerprints = list(RunCache(alice).fingerprints())
    assert fingerprints
    for fp in fingerprints:
        entry = RunCache(bob).get(fp)
        assert entry is not None and entry["experiment"]["name"] in ("first", "second")
        assert {"model.bin", "features"} <= set(entry["outs"])
        assert all(object_store(bob).has(key) for key in entry["outs"].values())

    # Pushing again sends nothing; pulling again fetches nothing.
    again = tether_ok(alice, "push")
    assert "0 object(s) sent" in again and "up-to-date" in again
    assert "0 object(s) received" in tether_ok(bob, "pull")


def test_checkout_restores_the_lock_files_outputs(alice: Path) -> None:
    run_exp(alice, "only", 3, cache=False)
    expected = _outputs_of(alice)
    tether_ok(alice, "push")  # stores the outputs in the local cache on the way
    (alice / "model.bin").unlink()
    (alice / "features" / "part-3.txt").write_text("edited by hand\n")
    out = tether_ok(alice, "checkout")
    assert "2 output(s) restored" in out
    assert _outputs_of(alice) == expected


def test_checkout_pulls_missing_objects_from_the_default_remote(alice: Path, bob: Path) -> None:
    run_exp(alice, "remote-only", 4)
    expected = _outputs_of(alice)
    tether_ok(alice, "push")
    tether_ok(bob, "pull", "--no-artifacts")
    assert not any(object_store(bob).iter_keys())
    out = tether_ok(bob, "checkout", "remote-only")
    assert "pulled" in out
    assert _outputs_of(bob) == expected


def test_corrupt_cache_object_is_an_error_naming_it(alice: Path) -> None:
    run_exp(alice, "fragile", 5)
    tether_ok(alice, "push")
    record = json.loads(git(alice, "cat-file", "blob",
                            f"{next(iter(exp_refs(alice)))}:.tether/record.json"))
    key = record["stages"][0]["outs"]["model.bin"]
    obj = object_store(alice).path_of(key)
    obj.chmod(0o644)
    obj.write_text("bit rot\n")
    (alice / "model.bin").unlink()
    proc = run_tether(alice, "checkout")
    assert proc.returncode == 7, proc.stderr
    assert str(obj) in proc.stderr and "model.bin" in proc.stderr and "corrupt" in proc.stderr
    assert not (alice / "model.bin").exists()


def test_diverged_ref_is_reported_and_kept(alice: Path, bob: Path) -> None:
    run_exp(alice, "clash", 1)
    run_exp(bob, "clash", 2)
    tether_ok(alice, "push")
    remote_before = git(alice, "ls-remote", "origin", "refs/tether/*")
    proc = run_tether(bob, "push")
    assert proc.returncode == 9, proc.stderr
    assert "diverged" in proc.stdout and "clash" in proc.stdout
    assert git(alice, "ls-remote", "origin", "refs/tether/*") == remote_before

    pulled = run_tether(bob, "pull")
    assert pulled.returncode == 9 and "diverged" in pulled.stdout
    assert "diverged" in tether_ok(bob, "ls-remote")

    tether_ok(bob, "push", "--force")
    assert git(alice, "ls-remote", "origin", "refs/tether/*") != remote_before


def test_shallow_clone_is_refused_with_a_hint(alice: Path, origin: Path, tmp_path: Path) -> None:
    run_exp(alice, "deep", 1)
    tether_ok(alice, "push")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin}", str(shallow)],
                   check=True)
    proc = run_tether(shallow, "pull")
    assert proc.returncode == 4
    assert "shallow" in proc.stderr and "fetch-depth: 0" in proc.stderr


def test_push_without_artifact_remote_moves_nothing(repo: Path, origin: Path) -> None:
    from share.conftest import make_project

    make_project(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    git(repo, "remote", "add", "origin", str(origin))
    run_exp(repo, "lonely", 1)
    proc = run_tether(repo, "push")
    assert proc.returncode == 8 and "tether remote add" in proc.stderr
    assert git(repo, "ls-remote", "origin", "refs/tether/*") == ""
    tether_ok(repo, "push", "--no-artifacts")
    assert "lonely" in git(repo, "ls-remote", "origin", "refs/tether/*")


def test_a_large_pull_packs_the_refs_it_creates(alice: Path, bob: Path, origin: Path) -> None:
    """Thousands of loose ref files slow every listing (show, gate, the index): packed."""
    tether_ok(alice, "run", "-q", "-n", "seed", "-S", "train.lr=1")
    ref = next(r for r in exp_refs(alice) if r.endswith("/seed"))
    commit = exp_refs(alice)[ref]
    base = ref.rsplit("/", 1)[0]
    lines = "".join(f"create {base}/copy-{i} {commit}\n" for i in range(120))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=alice, input=lines, text=True,
                   check=True)
    git(alice, "push", "-q", "origin", "refs/tether/*:refs/tether/*")
    tether_ok(bob, "pull", "origin", "--all", "--no-artifacts")
    assert len([r for r in exp_refs(bob) if "/copy-" in r]) == 120
    loose = [p for p in (bob / ".git" / "refs" / "tether").rglob("*") if p.is_file()]
    assert loose == []


def test_a_missing_object_is_named_by_its_experiment_and_path(alice: Path) -> None:
    import shutil

    tether_ok(alice, "run", "-q", "-n", "lost-one", "-S", "train.lr=3")
    shutil.rmtree(alice / ".tether" / "cache" / "objects")
    (alice / "model.bin").unlink()
    out = tether_ok(alice, "push", "origin", "lost-one")
    assert "model.bin of lost-one" in out and "is on neither side" in out


def test_pull_says_where_to_look_when_head_has_no_experiment(alice: Path, bob: Path) -> None:
    """Experiments recorded against an older commit: a plain pull (HEAD's) brings none and
    says how to see and take them, instead of a bare 'nothing'."""
    run_exp(alice, "older", 1)
    tether_ok(alice, "push")
    write(alice / "notes.txt", "a newer commit\n")
    git(alice, "add", "notes.txt")
    git(alice, "commit", "-q", "-m", "newer")
    git(alice, "push", "-q", "origin", "HEAD")
    git(bob, "pull", "-q", "origin", "HEAD")
    said = run_tether(bob, "pull")
    assert said.returncode == 0, said.stderr
    assert "origin has no experiment recorded against HEAD" in said.stderr
    assert "tether ls-remote origin" in said.stderr and "tether pull -A" in said.stderr
    assert not exp_refs(bob)
    tether_ok(bob, "pull", "-A")
    assert exp_refs(bob) == exp_refs(alice)
