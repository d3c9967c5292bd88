"""Hostile trees, manifests, records and overrides: refused, nothing written outside the
work tree or into `.git` (issue: "nothing pulled or cached may write outside the work tree").

Each test plays the attacker who can push a ref to a shared git remote or put an object
in a shared artifact store, and then the victim who pulls and applies or checks out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import blake3
import pytest

from conftest import git, run_tether, write
from helpers import repo_state
from security.crafted import plant_experiment
from share.conftest import make_project, run_exp, tether_ok
from tether.cache.hashing import DIR_PREFIX, manifest_bytes
from tether.errors import EXIT_UNSAFE_PATH
from tether.project import object_store

EVIL = b"#!/bin/sh\necho owned > /tmp/owned\n"


def snapshot(path: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and symlink (target) under `path`, for before/after comparisons;
    tether's own state and git's stat cache (.git/index, refreshed by `git status`) aside."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*filenames, *dirnames]:
            full = Path(dirpath) / name
            rel = str(full.relative_to(path))
            if "/.tether/" in f"/{rel}/" or rel.endswith(".git/index"):
                continue
            if full.is_symlink():
                found[rel] = os.readlink(full)
            elif full.is_file():
                found[rel] = full.read_bytes()
    return found


@pytest.fixture
def project(repo: Path) -> Path:
    """A realistic project: one real experiment recorded, outputs in the cache."""
    make_project(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    run_exp(repo, "honest", 1)
    return repo


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == EXIT_UNSAFE_PATH, (proc.stdout, proc.stderr)
    for word in words:
        assert word in proc.stderr


HOSTILE_TREES: dict[str, dict] = {
    "dotgit-hook": {".git": {"hooks": {"pre-commit": EVIL}}},
    "dotgit-upper": {".GIT": {"hooks": {"pre-commit": EVIL}}},
    "dotgit-8dot3": {"git~1": {"hooks": {"pre-commit": EVIL}}},
    "dotgit-ntfs-trailing": {".git. ": {"config": EVIL}},
    "dotgit-hfs": {".g\u200cit": {"config": EVIL}},
    "dotgit-deep": {"src": {".git": {"config": EVIL}}},
    "dotdot": {"..": {"escaped.txt": EVIL}},
    "dotdot-deep": {"src": {"..": {"..": {"escaped.txt": EVIL}}}},
    "backslash": {"..\\escaped.txt": EVIL},
    "abs-symlink": {"linkdir": ("link", "/tmp")},
    "escaping-symlink": {"linkdir": ("link", "../..")},
    "symlink-into-git": {"hooks": ("link", ".git/hooks")},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TREES))
def test_apply_refuses_hostile_trees_and_writes_nothing(project: Path, case: str) -> None:
    plant_experiment(project, f"evil-{case}", {
        "README.md": b"innocent looking change\n", **HOSTILE_TREES[case]})
    outside = project.parent
    before_outside = snapshot(outside)
    before_state = repo_state(project)

    proc = run_tether(project, "apply", f"evil-{case}")

    _refused(proc, "refused", f"evil-{case}")
    assert "Traceback" not in proc.stderr
    assert snapshot(outside) == before_outside  # nothing written anywhere, not even README
    assert repo_state(project) == before_state
    assert not (project / ".git" / "hooks" / "pre-commit").exists()


def test_symlink_already_in_the_work_tree_is_not_written_through(project: Path,
                                                                  tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, project / "linkdir")  # e.g. left by an earlier apply or by hand
    plant_experiment(project, "through-link", {"linkdir": {"file": EVIL}})

    proc = run_tether(project, "apply", "through-link")

    _refused(proc, "outside the work tree")
    assert list(elsewhere.iterdir()) == []


def test_symlink_inside_the_work_tree_is_restored(project: Path) -> None:
    plant_experiment(project, "inner-link", {
        "data": {"real.txt": b"payload\n"}, "alias": ("link", "data/real.txt")})

    tether_ok(project, "apply", "inner-link")

    assert os.readlink(project / "alias") == "data/real.txt"
    assert (project / "alias").read_bytes() == b"payload\n"


def test_pulled_hostile_experiment_is_refused_in_a_fresh_clone(project: Path,
                                                                tmp_path: Path) -> None:
    """One `git push` to a shared remote is all the attacker needs; the victim pulls."""
    origin = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "push", "-q", str(origin), "main")
    plant_experiment(project, "hooked", {".git": {"hooks": {"post-checkout": EVIL}}})
    git(project, "push", "-q", str(origin), "refs/tether/*:refs/tether/*")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    tether_ok(victim, "pull", "origin", "--all", "--no-artifacts")

    proc = run_tether(victim, "apply", "hooked")

    _refused(proc, ".git")
    assert not (victim / ".git" / "hooks" / "post-checkout").exists()


# -- checkout: manifests and record outputs -------------------------------------------


def _plant_manifest(root: Path, entries: list[tuple[str, bytes]]) -> str:
    """A directory object stored under its correct key, listing `entries`."""
    store = object_store(root)
    listing = []
    for rel, data in entries:
        key = "b3:" + blake3.blake3(data).hexdigest()
        store.save_bytes(data, key)
        listing.append((rel, key))
    raw = manifest_bytes(listing)
    key = DIR_PREFIX + blake3.blake3(raw).hexdigest()
    store.save_bytes(raw, key)
    return key


@pytest.mark.parametrize("rel", ["../../escaped.txt", "/tmp/escaped.txt", ".git/hooks/x",
                                 "ok/../../escaped.txt", "a/.GIT/config"])
def test_checkout_refuses_a_manifest_with_escaping_paths(project: Path, rel: str) -> None:
    key = _plant_manifest(project, [("fine.txt", b"fine\n"), (rel, EVIL)])
    plant_experiment(project, "bad-manifest", {}, {
        "stages": [{"name": "train", "status": "success", "outs": {"outdir": key}}]})
    before = snapshot(project.parent)

    proc = run_tether(project, "checkout", "bad-manifest")

    _refused(proc, "refused", "manifest")
    assert snapshot(project.parent) == before


@pytest.mark.parametrize("rel", ["../escaped.bin", ".git/hooks/pre-commit", "/tmp/x.bin"])
def test_checkout_refuses_record_outputs_outside_the_work_tree(project: Path, rel: str) -> None:
    data = b"payload\n"
    key = "b3:" + blake3.blake3(data).hexdigest()
    object_store(project).save_bytes(data, key)
    plant_experiment(project, "bad-outs", {}, {
        "stages": [{"name": "train", "status": "success", "outs": {rel: key}}]})
    before = snapshot(project.parent)

    proc = run_tether(project, "checkout", "bad-outs")

    _refused(proc, repr(rel))
    assert snapshot(project.parent).keys() == before.keys()


def test_run_cache_entry_restores_only_the_stage_s_declared_paths(project: Path) -> None:
    """A pulled run-cache entry listing extra paths: only declared outputs come back."""
    from tether.cache.runcache import RunCache

    runs = RunCache(project)
    (fingerprint,) = runs.fingerprints()  # the honest run's train stage, lr=1
    run_exp(project, "lr2", 2)
    entry = runs.get(fingerprint)
    assert entry is not None
    key = "b3:" + blake3.blake3(EVIL).hexdigest()
    object_store(project).save_bytes(EVIL, key)
    entry["outs"]["../escaped.sh"] = key
    entry["outs"][".git/hooks/pre-commit"] = key
    runs.put(fingerprint, entry)

    out = tether_ok(project, "run", "-n", "reuse", "-S", "train.lr=1")

    assert "run-cache" in out or "restored" in out, out
    assert not (project.parent / "escaped.sh").exists()
    assert not (project / ".git" / "hooks" / "pre-commit").exists()


# -- -S FILE: ---------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["../outside.yaml:a=2", "/abs-tether-test.yaml:+a=1",
                                      ".git/config:+core.x=1", "conf/../../outside.yaml:a=2"])
def test_override_files_outside_the_work_tree_are_refused(project: Path, override: str) -> None:
    outside = project.parent / "outside.yaml"
    outside.write_text("a: 1\n")
    refs_before = git(project, "for-each-ref", "refs/tether")

    proc = run_tether(project, "run", "-S", override)

    _refused(proc, "params file")
    assert outside.read_text() == "a: 1\n"
    assert not Path("/abs-tether-test.yaml").exists()
    assert git(project, "for-each-ref", "refs/tether") == refs_before  # no run, no ref


def test_override_through_a_symlinked_directory_is_refused(project: Path,
                                                           tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf-elsewhere"
    write(elsewhere / "train.yaml", "lr: 1\n")
    os.symlink(elsewhere, project / "conf")

    proc = run_tether(project, "run", "-S", "conf/train.yaml:lr=5")

    _refused(proc, "outside the work tree")
    assert (elsewhere / "train.yaml").read_text() == "lr: 1\n"


def test_recorded_trees_pass_git_fsck(project: Path) -> None:
    """What the recorder writes is accepted by a remote with receive.fsckObjects."""
    write(project / "conf" / "extra.yaml", "depth: 1\n")
    tether_ok(project, "run", "-q", "-n", "other", "-S", "conf/extra.yaml:depth=3")
    proc = git(project, "fsck", "--strict", "--no-dangling")
    assert "error" not in proc


def test_spec_paths_into_git_are_spec_errors(project: Path) -> None:
    write(project / "tether.yaml",
          "stages:\n  s:\n    cmd: echo hi\n    outs: [.git/hooks/pre-commit]\n")
    proc = run_tether(project, "spec")
    assert proc.returncode == 3, proc.stderr
    assert "git's own directory" in proc.stderr
