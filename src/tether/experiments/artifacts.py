"""What an experiment's artifacts are: the objects its record and its commit point to.

Pure reads over records and commits, shared by push/pull/checkout (`tether.share`)
and by `tether gc`, which keeps every object some experiment still references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.gitstore.git import Git
from tether.record.record import RunRecord
from tether.status import SUCCESS


def record_outputs(record: RunRecord | None) -> dict[str, str]:
    """Output path -> object key over a record's stages (later stages win); none without
    a (valid) record."""
    outs: dict[str, str] = {}
    for stage in record.stages if record else ():
        for path, key in stage.outs.items():
            if isinstance(key, str):
                outs[path] = key
    return outs


def record_inputs(record: RunRecord) -> set[str]:
    """The object keys of a record's dependencies (data tracked with `tether add`)."""
    return {key for stage in record.stages for key in stage.deps.values()
            if isinstance(key, str)}


def run_cache_entries(record: RunRecord | None, ref: str) -> dict[str, dict[str, Any]]:
    """Fingerprint -> run-cache entry for every stage of a record that succeeded."""
    entries = {}
    for stage in record.stages if record else ():
        if stage.status == SUCCESS and isinstance(stage.fingerprint, str):
            assert record is not None
            entries[stage.fingerprint] = {
                "outs": {p: k for p, k in stage.outs.items() if k},
                "metrics": record.metrics,
                "experiment": {"ref": ref, "name": record.name},
                "run_id": record.id, "stage": stage.name,
            }
    return entries


def tracked_data(git: Git, commits: Sequence[str] = (), *, work_tree: bool = False,
                 ) -> dict[str, str]:
    """Path -> key of the data inputs tracked with `tether add`: those pointed to in the
    work tree (with `work_tree`) and in each commit (later ones win)."""
    from tether.cache.tracked import commit_pointers, work_tree_pointers

    found: dict[str, str] = {}
    for commit in commits:
        found.update((p.path, p.key) for p in commit_pointers(git, commit))
    if work_tree:
        found.update((p.path, p.key) for p in work_tree_pointers(git))
    return found
