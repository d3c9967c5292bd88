"""Experiment commits under `refs/tether/exps/<baseline>/<name>`.

Building the commit never touches HEAD, branches, the user's index or work
tree: the tree is assembled in a private index file, the commit is made with
plumbing, and the ref is created only if it did not exist (so two runs racing
for one name cannot overwrite each other).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tether.errors import ExperimentError, GitError
from tether.gitstore.git import Git, GitJob
from tether.gitstore.names import is_valid_name
from tether.layout import EXPS_REFS, RECORD_PATH, STATE_DIR, exp_ref
from tether.record.validate import Skipped

# Untracked files larger than this are not stored in git (the record lists their names).
UNTRACKED_SIZE_CAP = 10 * 1024 * 1024
_FALLBACK_IDENT = {
    "GIT_AUTHOR_NAME": "tether",
    "GIT_AUTHOR_EMAIL": "tether@localhost",
    "GIT_COMMITTER_NAME": "tether",
    "GIT_COMMITTER_EMAIL": "tether@localhost",
}


class ExperimentRef(NamedTuple):
    """One experiment ref (a NamedTuple: `show` must not pay for importing dataclasses)."""

    ref: str
    baseline: str
    name: str
    commit: str


_BASELINE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1 or SHA-256


def exp_ref_problem(ref: str) -> str | None:
    """What makes `ref` no valid experiment ref (`refs/tether/exps/<40 hex>/<name>`), or None.

    Refs come from shared remotes: one pushed by hand or by a broken tool is skipped
    by the read side, never taken apart into a baseline and a name it does not have.
    """
    if not ref.startswith(EXPS_REFS):
        return f"not under {EXPS_REFS}"
    baseline, _, name = ref[len(EXPS_REFS):].partition("/")
    if not _BASELINE.match(baseline):
        return f"{baseline!r} is not a baseline commit (40 hex digits)"
    if not is_valid_name(name):
        return f"{name!r} is not a valid experiment name"
    return None


def parse_exp_ref(ref: str, commit: str) -> ExperimentRef | None:
    """The experiment `ref` names, or None when it is no valid experiment ref."""
    if exp_ref_problem(ref) is not None:
        return None
    baseline, _, name = ref[len(EXPS_REFS):].partition("/")
    return ExperimentRef(ref=ref, baseline=baseline, name=name, commit=commit)


def list_experiments(
    git: Git, baseline: str | None = None, *, skipped: list[Skipped] | None = None
) -> list[ExperimentRef]:
    """Every experiment ref (under one baseline when given), in one git call.

    Refs with an invalid baseline or name are left out, and added to `skipped` if given.
    """
    pattern = EXPS_REFS + (f"{baseline}/" if baseline else "")
    found = []
    for line in git.for_each_ref(pattern):
        ref, _, commit = line.partition(" ")
        parsed = parse_exp_ref(ref, commit)
        if parsed:
            found.append(parsed)
        elif skipped is not None:
            skipped.append(Skipped(ref, str(exp_ref_problem(ref))))
    return found


def taken_names(git: Git, baseline: str) -> set[str]:
    """Experiment names already used under `baseline`."""
    return read_taken_names(start_taken_names(git, baseline), baseline)


def start_taken_names(git: Git, baseline: str) -> GitJob:
    """Start the git question `read_taken_names` answers."""
    return git.start("for-each-ref", "--format=%(refname)", f"{EXPS_REFS}{baseline}/")


def read_taken_names(job: GitJob, baseline: str) -> set[str]:
    prefix = f"{EXPS_REFS}{baseline}/"
    refs = job.result().stdout.decode(errors="replace").splitlines()
    return {ref[len(prefix):] for ref in refs if ref.startswith(prefix)}


def is_excluded(path: str, excluded: Iterable[str]) -> bool:
    return any(path == ex or path.startswith(ex.rstrip("/") + "/") for ex in excluded)


def snapshot_tree(
    git: Git,
    workspace: Path,
    *,
    exclude: Iterable[str] = (),
    force_add: Iterable[str] = (),
    extra_files: Mapping[str, Path] | None = None,
    scratch: Path,
    index: Path | None = None,
) -> str:
    """The tree of `workspace` as it is now, plus `extra_files` (tree path -> file).

    Tracked files are taken as they are on disk; untracked, non-ignored files are
    added unless excluded or larger than UNTRACKED_SIZE_CAP; `force_add` files
    are added even if ignored. The user's index is copied, never written.
    """
    excluded = [STATE_DIR, *exclude]
    scratch.mkdir(parents=True, exist_ok=True)
    index = scratch / f"index-{os.getpid()}-{id(workspace)}"
    real_index = index or Path(
        git.out("rev-parse", "--path-format=absolute", "--git-path", "index", cwd=workspace)
    )
    if real_index.exists():
        import shutil  # here, not at the top: not worth importing on every run

        shutil.copyfile(real_index, index)
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        if not real_index.exists():
            git.run("read-tree", "HEAD", env=env, cwd=workspace)
        git.run("add", "-u", "--", ".", f":(exclude){STATE_DIR}", env=env, cwd=workspace)
        untracked = [
            p
            for p in git.out(
                "ls-files", "-o", "--exclude-standard", "-z", env=env, cwd=workspace
            ).split("\0")
            if p
            and not is_excluded(p, excluded)
            and (workspace / p).is_file()
            and (workspace / p).stat().st_size <= UNTRACKED_SIZE_CAP
        ]
        # Untracked files are not ignored, so adding them with -f changes nothing for them.
        adding = untracked + [p for p in force_add if (workspace / p).is_file()]
        if adding:
            git.run(
                "add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul",
                input="\0".join(adding), env=env, cwd=workspace,
            )
        outs = [p for p in exclude if p]
        if outs:
            git.run("rm", "--cached", "-r", "-q", "--ignore-unmatch", "--", *outs,
                    env=env, cwd=workspace)
        extras = dict(extra_files or {})
        if extras:
            paths = list(extras)
            shas = git.out("hash-object", "-w", "--", *(str(extras[p]) for p in paths)).split()
            info = "".join(f"100644 {sha}\t{path}\n" for path, sha in zip(paths, shas, strict=True))
            git.run("update-index", "--add", "--index-info", input=info, env=env, cwd=workspace)
        return git.out("write-tree", env=env, cwd=workspace)
    finally:
        index.unlink(missing_ok=True)


def commit_experiment(
    git: Git, *, baseline: str, name: str, tree: str, message: str
) -> ExperimentRef:
    """Commit `tree` with parent `baseline` and create its ref, failing if it exists."""
    proc = git.run("commit-tree", tree, "-p", baseline, input=message, check=False)
    if proc.returncode != 0:
        # No user.name/user.email configured (a fresh CI machine): still record the run.
        proc = git.run("commit-tree", tree, "-p", baseline, input=message, env=_FALLBACK_IDENT)
    commit = proc.stdout.decode().strip()
    ref = exp_ref(baseline, name)
    try:
        git.update_ref(ref, commit, old="", message=f"tether: record {name}")
    except GitError as exc:
        raise ExperimentError(
            f"experiment name {name!r} is already used under baseline {baseline[:10]}",
            hint="choose another name with -n, or remove the old experiment",
        ) from exc
    return ExperimentRef(ref=ref, baseline=baseline, name=name, commit=commit)


def read_record(git: Git, commit: str) -> dict[str, Any]:
    """The machine-readable record stored in an experiment commit."""
    text = git.out("cat-file", "blob", f"{commit}:{RECORD_PATH}")
    data: dict[str, Any] = json.loads(text)
    return data


def read_record_blobs(git: Git, commits: Sequence[str]) -> list[bytes | None]:
    """The raw record JSON of many experiment commits in one `git cat-file --batch`."""
    if not commits:
        return []
    request = "".join(f"{c}:{RECORD_PATH}\n" for c in commits).encode()
    out = git.run("cat-file", "--batch", "--buffer", input=request).stdout
    blobs: list[bytes | None] = []
    pos = 0
    for _ in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            blobs.append(None)
            continue
        size = int(header[2])
        blobs.append(out[pos : pos + size])
        pos += size + 1
    return blobs
