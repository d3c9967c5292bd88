"""A realistic project in an unusual repository state, run every way tether runs.

Each test puts a project in one state (git-lfs, a clean/smudge filter, eol
conversion, submodules, failing hooks, odd names, GIT_DIR), then runs a 2-stage
pipeline and a bare command in place, in a temporary worktree and through the
embedded queue, and checks that each experiment tree holds what `git add` would
have stored and that the user's repository is as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from conftest import git, write
from helpers import exp_refs, record_of, repo_state

PREPARE = """\
import os, pathlib, sys
out = pathlib.Path("out")
out.mkdir(exist_ok=True)
total = sum(os.path.getsize(p) for p in sys.argv[1:])
(out / "sizes.txt").write_text(str(total))
"""

TRAIN = """\
import json, pathlib
size = int(pathlib.Path("out/sizes.txt").read_text())
json.dump({"size": size}, open("metrics.json", "w"))
"""


def spec(deps: Iterable[str]) -> str:
    deps = list(deps)
    return (
        "stages:\n"
        "  prepare:\n"
        f"    cmd: python prepare.py {' '.join(deps)}\n"
        f"    deps: [{', '.join(['prepare.py', *deps])}]\n"
        "    outs: [out]\n"
        "  train:\n"
        "    cmd: python train.py\n"
        "    deps: [train.py, out]\n"
        "    metrics: [metrics.json]\n"
    )


def make_project(root: Path, deps: Iterable[str] = ("data/raw.csv",), commit: bool = True) -> None:
    """The pipeline and its data; run products and a scratch folder git-ignored."""
    write(root / "tether.yaml", spec(deps))
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "data" / "raw.csv", "x,y\n1,2\n3,4\n")
    write(root / "scratch" / "tmp.log", "ignored\n")
    write(root / ".gitignore", "scratch/\nout/\nmetrics.json\ntether.lock\n")
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "pipeline")


def tether(root: Path, *args: str, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=root, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=180)
    if check:
        assert proc.returncode == 0, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def snapshot_state(root: Path) -> dict[str, str]:
    """What recording must leave alone, merge/rebase state included."""
    state = repo_state(root)
    git_dir = Path(git(root, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    state["git_dir"] = " ".join(sorted(
        p.name for p in git_dir.iterdir()
        if p.name in ("MERGE_HEAD", "REBASE_HEAD", "CHERRY_PICK_HEAD", "rebase-merge")
    ))
    state["worktrees"] = git(root, "worktree", "list", "--porcelain")
    return state


def assert_repo_untouched(root: Path, before: dict[str, str]) -> None:
    assert snapshot_state(root) == before
    fsck = subprocess.run(["git", "fsck", "--no-progress"], cwd=root, capture_output=True,
                          text=True)
    assert fsck.returncode == 0, fsck.stderr
    git_dir = Path(git(root, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    assert not list(git_dir.glob("fast_import_crash_*"))
    assert not (git_dir / "worktrees").exists() or not list((git_dir / "worktrees").iterdir())


def exp_ref(root: Path, name: str) -> str:
    head = git(root, "rev-parse", "HEAD")
    ref = f"refs/tether/exps/{head}/{name}"
    assert ref in exp_refs(root), (name, sorted(exp_refs(root)))
    return ref


def as_git_add(root: Path, path: str) -> str:
    """The blob `git add` would store for the work-tree file `path` (filters applied)."""
    return git(root, "hash-object", f"--path={path}", "--", str(root / path))


def assert_stored_as_git_add(root: Path, ref: str, paths: Iterable[str]) -> None:
    for path in paths:
        stored = git(root, "rev-parse", f"{ref}:{path}")
        assert stored == as_git_add(root, path), path


def run_every_way(root: Path, command: list[str] | None = None,
                  queue: bool = True) -> dict[str, dict[str, object]]:
    """The pipeline and a bare command, in place and `--temp`, and the pipeline queued.

    Returns name -> record; every run must succeed.
    """
    bare = command or ["python", "prepare.py", "data/raw.csv"]
    tether(root, "run", "-n", "inplace")
    tether(root, "run", "-n", "bare", "--", *bare)
    tether(root, "run", "--temp", "-n", "temp")
    tether(root, "run", "--temp", "-n", "tempbare", "--", *bare)
    names = ["inplace", "bare", "temp", "tempbare"]
    if queue:
        tether(root, "run", "--queue", "-n", "queued")
        tether(root, "worker", "--exit-when-idle")
        names.append("queued")
    found = {name: record_of(root, exp_ref(root, name)) for name in names}
    for name, record in found.items():
        assert record["status"] == "success", (name, json.dumps(record["stages"])[:2000])
    # What a user does next works on these records too.
    shown = tether(root, "show").stdout
    assert all(name in shown for name in names), shown
    tether(root, "diff", "inplace", "temp")
    return found
