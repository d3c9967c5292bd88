"""The baseline row of `tether show`: a baseline commit's own run, and its params.

A baseline commit's own run is the newest successful experiment recorded against it
that ran it as committed (`record.as_committed`: no uncommitted change, no
untracked file, no `-S` override) — what a main build records, or a plain `tether run`
right after a commit. Its params are the commit's params files; without such a run,
they are read from the commit itself, for every baseline shown in one `git cat-file`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import ParamsError
from tether.gitstore.experiments import read_blobs
from tether.layout import DEFAULT_PARAMS
from tether.record.metrics import flat_params
from tether.status import SUCCESS

if TYPE_CHECKING:
    from tether.experiments.index import IndexedExperiment
    from tether.gitstore.git import Git

# Flat params of a baseline commit, and the params files that were found in it.
BaselineParams = tuple[dict[str, Any], frozenset[str]]


def baseline_run(experiments: Iterable[IndexedExperiment]) -> IndexedExperiment | None:
    """The newest successful experiment that ran its baseline commit as committed."""
    found = None
    for exp in experiments:
        if exp.status == SUCCESS and exp.as_committed and (
                found is None or exp.created_at >= found.created_at):
            found = exp
    return found


def params_file(key: str) -> str:
    """The params file a flat key comes from (`file:key` for files other than params.yaml)."""
    file, colon, _ = key.partition(":")
    return file if colon else DEFAULT_PARAMS


def read_baseline_params(git: Git, wanted: dict[str, set[str]]) -> dict[str, BaselineParams]:
    """Baseline sha → its flat params and the files found, for `wanted` (sha → params
    files): remembered in the index, else read in one git call. A file missing or
    unreadable at a commit is left out: its keys are compared with nothing."""
    specs = [(sha, file) for sha, files in wanted.items() for file in sorted(files)]
    contents: dict[str, dict[str, Any]] = {sha: {} for sha in wanted}
    for (sha, file), data in zip(specs, commit_params(git.root, _reader(git), specs),
                                 strict=True):
        if data is not None:
            contents[sha][file] = data
    return {sha: (flat_params(files), frozenset(files)) for sha, files in contents.items()}


def _reader(git: Git) -> Callable[[list[tuple[str, str]]], list[Any]]:
    def read(specs: list[tuple[str, str]]) -> list[Any]:
        """Each params file's content at its commit, None when missing or unreadable."""
        from tether.parameters import parse_params_text

        found: list[Any] = []
        for (_, file), blob in zip(specs, read_blobs(git, [f"{s}:{f}" for s, f in specs]),
                                   strict=True):
            try:
                data = None if blob is None else parse_params_text(
                    file, blob.decode(errors="replace"))
            except ParamsError:
                data = None
            found.append(data if isinstance(data, dict) or data is None else {})
        return found

    return read


def differing_from(experiments: Sequence[IndexedExperiment], baseline: BaselineParams
                   ) -> set[str]:
    """Params keys whose value in some experiment is not the baseline's, a key missing
    on either side included, among the files both the experiment and the baseline have."""
    params, files = baseline
    differing: set[str] = set()
    for exp in experiments:
        values = exp.params
        read = set()
        for key, value in values.items():
            file = params_file(key)
            read.add(file)
            if params.get(key, _MISSING) != value and file in files:
                differing.add(key)
        differing.update(key for key in params if key not in values and params_file(key) in read)
    return differing


def commit_params(root: Path, read: Callable[[list[tuple[str, str]]], list[Any]],
                  wanted: list[tuple[str, str]]) -> list[Any]:
    """The content of params file `file` at commit `sha`, for each (sha, file) wanted:
    remembered in the index (a commit never changes), else got from `read` (which says
    None for a file the commit does not have) and remembered."""
    from tether.experiments.index import open_database

    connection = open_database(root)
    try:
        known = {}
        for sha, file in set(wanted):
            row = connection.execute(
                "SELECT params FROM commit_params WHERE commit_sha = ? AND file = ?",
                (sha, file)).fetchone()
            if row is not None:
                known[sha, file] = None if row[0] is None else json.loads(row[0])
        missing = sorted({spec for spec in wanted if spec not in known})
        if missing:
            found = read(missing)
            known.update(zip(missing, found, strict=True))
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT OR REPLACE INTO commit_params VALUES (?, ?, ?)",
                [(sha, file, None if data is None else json.dumps(data, default=str))
                 for (sha, file), data in zip(missing, found, strict=True)])
            connection.execute("COMMIT")
    finally:
        connection.close()
    return [known[spec] for spec in wanted]


_MISSING = object()
