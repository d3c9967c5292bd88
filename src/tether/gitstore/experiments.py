"""Experiment refs `refs/tether/exps/<baseline>/<name>`: parsing, listing, names taken.

The commits themselves are made by `tether.gitstore.fastrecord`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from tether.gitstore.git import Git, GitJob
from tether.gitstore.names import is_valid_name
from tether.layout import EXPS_REFS, RECORD_PATH
from tether.record.record import InvalidRecord, RunRecord, load_record
from tether.record.validate import Skipped


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


def read_record(git: Git, commit: str) -> RunRecord:
    """The record stored in an experiment commit (`InvalidRecord` if it is not valid)."""
    record, problem = load_record(read_record_blobs(git, [commit])[0])
    if record is None:
        raise InvalidRecord(f"the record of commit {commit[:10]} cannot be read: {problem}")
    return record


def read_record_blobs(git: Git, commits: Sequence[str]) -> list[bytes | None]:
    """The raw record JSON of many experiment commits in one `git cat-file --batch`."""
    return read_blobs(git, [f"{c}:{RECORD_PATH}" for c in commits])


def read_blobs(git: Git, specs: Sequence[str]) -> list[bytes | None]:
    """The blobs named by `REV:PATH` specs, in one `git cat-file --batch`; None where
    a spec names nothing or no blob."""
    if not specs:
        return []
    request = "".join(f"{spec}\n" for spec in specs).encode()
    out = git.run("cat-file", "--batch", "--buffer", input=request).stdout
    blobs: list[bytes | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3:  # "<spec> missing": no content follows
            blobs.append(None)
            continue
        size = int(header[2])
        blobs.append(out[pos : pos + size] if header[1] == b"blob" else None)
        pos += size + 1
    return blobs
