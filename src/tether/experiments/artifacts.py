"""What an experiment's artifacts are: the objects its record and its commit point to.

Pure reads over records and commits, shared by push/pull/checkout (`tether.share`)
and by `tether gc`, which keeps every object some experiment still references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.gitstore.git import Git


def record_outputs(record: dict[str, Any]) -> dict[str, str]:
    """Output path -> object key over a record's stages (later stages win)."""
    outs: dict[str, str] = {}
    for stage in record.get("stages") or []:
        for path, key in (stage.get("outs") or {}).items():
            if isinstance(key, str):
                outs[path] = key
    return outs


def run_cache_entries(record: dict[str, Any], ref: str) -> dict[str, dict[str, Any]]:
    """Fingerprint -> run-cache entry for every stage of a record that succeeded."""
    entries = {}
    for stage in record.get("stages") or []:
        fingerprint = stage.get("fingerprint")
        if stage.get("status") == "success" and isinstance(fingerprint, str):
            entries[fingerprint] = {
                "outs": {p: k for p, k in (stage.get("outs") or {}).items() if k},
                "metrics": record.get("metrics") or {},
                "experiment": {"ref": ref, "name": record.get("name")},
                "run_id": record.get("id"), "stage": stage.get("name"),
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
