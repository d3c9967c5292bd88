"""Experiment refs are pulled from shared remotes: a malformed one must never break the
read side. Each is skipped with one warning naming it, and the good experiments next to it
stay visible to show, diff, gc, logs and remove."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, record_of, repo_state

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [raw.txt]
    outs: [data]
  train:
    cmd: python train.py
    deps: [data, train.py]
    params: [train.lr]
    outs: [model.bin]
    metrics: [metrics.json]
metrics:
  acc: {direction: max}
"""
PREPARE = """\
import pathlib
pathlib.Path('data').mkdir(exist_ok=True)
pathlib.Path('data/rows.txt').write_text(pathlib.Path('raw.txt').read_text() * 3)
"""
TRAIN = """\
import json, pathlib, yaml
lr = yaml.safe_load(open('params.yaml'))['train']['lr']
if lr > 1:
    raise SystemExit('diverged')
pathlib.Path('model.bin').write_bytes(bytes(range(256)) * 4)
json.dump({'acc': 1 - lr, 'loss': lr}, open('metrics.json', 'w'))
print('trained with', lr)
"""


def _git_in(root: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True,
                          check=True)
    return proc.stdout.decode().strip()


def plant(root: Path, ref: str, record_blob: bytes | None) -> str:
    """Create `ref` by hand (hash-object, mktree, commit-tree, update-ref): a commit on HEAD
    whose tree holds `record_blob` as `.tether/record.json` (no record at all when None)."""
    entries = [f"100644 blob {_git_in(root, 'hash-object', '-w', 'README.md')}\tREADME.md"]
    if record_blob is not None:
        blob = _git_in(root, "hash-object", "-w", "--stdin", data=record_blob)
        inner = _git_in(root, "mktree", data=f"100644 blob {blob}\trecord.json\n".encode())
        entries.append(f"040000 tree {inner}\t.tether")
    tree = _git_in(root, "mktree", data=("\n".join(entries) + "\n").encode())
    commit = _git_in(root, "commit-tree", tree, "-p", "HEAD", "-m", "planted")
    _git_in(root, "update-ref", ref, commit)
    return commit


@pytest.fixture
def project(repo: Path) -> Path:
    """A two-stage pipeline with a git-ignored data dir, two good runs and a failed one."""
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1  # learning rate\n")
    write(repo / "prepare.py", PREPARE)
    write(repo / "train.py", TRAIN)
    write(repo / "raw.txt", "a,b\n")
    write(repo / ".gitignore", "data/\nmodel.bin\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    for name, lr in (("good-a", "0.1"), ("good-b", "0.2"), ("bad-lr", "5")):
        proc = run_tether(repo, "run", "-n", name, "-S", f"train.lr={lr}")
        assert proc.returncode == (1 if name == "bad-lr" else 0), proc.stderr
    return repo


def hostile_refs(root: Path) -> dict[str, str]:
    """Plant one malformed experiment of each kind next to the good ones; ref -> problem."""
    head = git(root, "rev-parse", "HEAD")
    good = record_of(root, f"refs/tether/exps/{head}/good-a")

    def variant(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    base = f"refs/tether/exps/{head}"
    planted = {
        f"{base}/huge-date": (variant(id="h1", name="huge-date", created_at=1e20),
                              "created_at"),
        f"{base}/text-date": (variant(id="h2", name="text-date", created_at="yesterday"),
                              "created_at is a string"),
        f"{base}/list-metrics": (variant(id="h3", name="list-metrics", metrics=[1, 2]),
                                 "metrics is a list"),
        f"{base}/string-stages": (variant(id="h4", name="string-stages", stages=["x"]),
                                  "stages[0]"),
        f"{base}/bad-rules": (variant(id="h5", name="bad-rules",
                                      spec={"metrics": {"acc": {"direction": "max",
                                                                "tolerance": "lots"}}}),
                              "tolerance"),
        f"{base}/nan-metric": (b'{"id": "h6", "name": "n", "status": "success", '
                               b'"created_at": 1, "metrics": {"acc": NaN}}', "finite"),
        f"{base}/not-json": (b"\x00\xffnot json{", "not valid JSON"),
        f"{base}/no-record": (None, "has no .tether/record.json"),
        f"{base}/_bad-name": (variant(id="h7"), "not a valid experiment name"),
        f"{base}/nested/name": (variant(id="h8"), "not a valid experiment name"),
        "refs/tether/exps/not-a-sha/odd": (variant(id="h9"), "not a baseline commit"),
    }
    for ref, (blob, _) in planted.items():
        plant(root, ref, blob)
    return {ref: problem for ref, (_, problem) in planted.items()}


def assert_warned(stderr: str, expected: dict[str, str]) -> None:
    warnings = [line for line in stderr.splitlines() if line.startswith("tether: warning:")]
    for ref, problem in expected.items():
        found = [w for w in warnings if f" {ref}:" in w]
        assert len(found) == 1, (ref, stderr)
        assert problem in found[0], (problem, found[0])


def test_show_skips_each_malformed_record_with_one_warning(project: Path) -> None:
    expected = hostile_refs(project)
    in_head = {r: p for r, p in expected.items() if "not-a-sha" not in r}
    for args in (("show",), ("show", "--json"), ("show", "--md"), ("show", "--sort-by",
                                                                    "metrics.acc")):
        proc = run_tether(project, *args)
        assert proc.returncode == 0, proc.stderr
        assert_warned(proc.stderr, in_head)
        assert "not-a-sha" not in proc.stderr  # another baseline: not in scope
        for name in ("good-a", "good-b", "bad-lr"):
            assert name in proc.stdout
    shown = json.loads(run_tether(project, "show", "--json").stdout)
    assert sorted(e["name"] for e in shown) == ["bad-lr", "good-a", "good-b"]
    everything = run_tether(project, "show", "-A")
    assert everything.returncode == 0, everything.stderr
    assert_warned(everything.stderr, expected)
    # Warned again on every command (the index remembers why), never crashing.
    again = run_tether(project, "show")
    assert again.returncode == 0 and again.stderr.count("tether: warning:") == len(in_head)


def test_diff_logs_gc_remove_work_next_to_malformed_records(project: Path) -> None:
    before = repo_state(project)
    expected = hostile_refs(project)
    diff = run_tether(project, "diff", "good-b", "good-a")
    assert diff.returncode == 0, diff.stderr
    assert "acc" in diff.stdout and "worse" in diff.stdout
    latest = run_tether(project, "diff")  # the latest readable one, bad-lr
    assert latest.returncode == 0, latest.stderr
    assert "A: bad-lr" in latest.stdout
    assert_warned(latest.stderr, {r: p for r, p in expected.items() if "not-a-sha" not in r})
    logs = run_tether(project, "logs")
    assert logs.returncode == 0, logs.stderr
    assert "diverged" in logs.stdout
    gc = run_tether(project, "gc", "--dry")
    assert gc.returncode == 0, gc.stderr
    assert_warned(gc.stderr, expected)
    assert "would remove 0 object(s)" in gc.stderr
    failed = run_tether(project, "remove", "--failed", "-A", "--dry")
    assert failed.returncode == 0, failed.stderr
    assert "would remove bad-lr" in failed.stdout
    assert "good-a" not in failed.stdout and "huge-date" not in failed.stdout
    assert_warned(failed.stderr, expected)
    assert repo_state(project) == before


def test_a_named_malformed_experiment_gets_a_clear_error_and_can_be_removed(
    project: Path,
) -> None:
    hostile_refs(project)
    for args in (("diff", "text-date", "good-a"), ("logs", "list-metrics")):
        proc = run_tether(project, *args)
        assert proc.returncode == 5, proc.stderr
        assert "cannot be read" in proc.stderr and "Traceback" not in proc.stderr
    removed = run_tether(project, "remove", "huge-date", "not-json")
    assert removed.returncode == 0, removed.stderr
    assert not any(r.endswith(("/huge-date", "/not-json")) for r in exp_refs(project))
    shown = run_tether(project, "show")
    assert "huge-date" not in shown.stderr and "good-a" in shown.stdout
