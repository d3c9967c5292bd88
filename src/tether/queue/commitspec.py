"""The pipeline spec of a commit, read without touching the user's work tree.

A follower decides whether it may claim a pushed commit from the worker tags its
stages `require`, before any worktree exists. A YAML spec is read from the commit's
objects (one `git cat-file --batch` for many commits) and validated in-process: it is
data. A `tetherfile.py` spec is code that may import the project's modules: it is loaded
by `tether spec --json` in a child process, in a worktree of the commit under
`.tether/worktrees/`, so the pushed code never runs inside the follower.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from tether.errors import SpecError, TetherError
from tether.gitstore.experiments import read_blobs
from tether.gitstore.git import Git, clean_env
from tether.gitstore.worktrees import add_worktree, remove_worktree
from tether.ids import new_id
from tether.layout import worktrees_dir
from tether.spec.loader import PYTHON_SPEC_NAMES, SPEC_NAMES, parse_yaml_spec
from tether.spec.model import Pipeline

PYTHON_SPEC_TIMEOUT = 120.0  # seconds a tetherfile.py may take to build its pipeline


def pipelines_at(git: Git, commits: Sequence[str]) -> dict[str, Pipeline | SpecError]:
    """The validated pipeline of each commit, or the SpecError saying why it has none
    (no spec, two specs, a spec with problems)."""
    wanted = list(dict.fromkeys(commits))
    blobs = read_blobs(git, [f"{c}:{name}" for c in wanted for name in SPEC_NAMES])
    found: dict[str, Pipeline | SpecError] = {}
    for index, commit in enumerate(wanted):
        present = {name: blob for name, blob in
                   zip(SPEC_NAMES, blobs[index * len(SPEC_NAMES):], strict=False)
                   if blob is not None}
        try:
            found[commit] = _pipeline(git, commit, present)
        except SpecError as exc:
            found[commit] = exc
    return found


def _pipeline(git: Git, commit: str, present: dict[str, bytes]) -> Pipeline:
    where = f"commit {commit[:10]}"
    if not present:
        raise SpecError(f"{where}: no tether.yaml or tetherfile.py at the top of its tree")
    if len(present) > 1:
        raise SpecError(f"{where}: found {' and '.join(present)}; keep exactly one "
                        "pipeline spec")
    name, blob = next(iter(present.items()))
    if name in PYTHON_SPEC_NAMES:
        return _python_pipeline(git, commit, name)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where}:{name}: cannot read the file: {exc}") from exc
    return parse_yaml_spec(text, git.root / name, f"{name} at {commit[:10]}")


def _python_pipeline(git: Git, commit: str, name: str) -> Pipeline:
    """`tether spec --json`, run in a worktree of `commit` by a child process."""
    from tether.spec_cache import pipeline_from_json

    path = worktrees_dir(git.root) / f"spec-{commit[:12]}-{new_id()}"
    try:
        add_worktree(git, path, commit)
        # -P: a worktree's tether.py must not shadow the tether package.
        proc = subprocess.run([sys.executable, "-P", "-m", "tether", "-C", str(path), "spec",
                               "--json"],
                              cwd=path.parent, capture_output=True, env=clean_env(),
                              timeout=PYTHON_SPEC_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise SpecError(f"{name} at {commit[:10]}: building the pipeline took "
                        f"over {PYTHON_SPEC_TIMEOUT:g}s") from exc
    except TetherError as exc:
        raise SpecError(f"{name} at {commit[:10]}: cannot check out the "
                        f"commit to load it: {exc}") from exc
    finally:
        remove_worktree(git, path)
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SpecError(f"{name} at {commit[:10]}: "
                        f"{said[-1] if said else f'tether spec exited {proc.returncode}'}")
    try:
        return pipeline_from_json(git.root / name, json.loads(proc.stdout), {})
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"{name} at {commit[:10]}: unreadable "
                        f"`tether spec --json` output: {exc}") from exc
