"""What an experiment's artifacts are: the objects its record and its commit point to.

Pure reads over records and commits, shared by push/pull/checkout (`tether.share`)
and by `tether gc`, which keeps every object some experiment still references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.gitstore.git import Git
from tether.record.record import RunRecord
from tether.status import SUCCESS

if TYPE_CHECKING:
    from tether.lockfile import SourcePin


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
    """Path -> key of the data inputs: tracked with `tether add` (pointers) and declared
    sources pinned in tether.lock, in the work tree (with `work_tree`) and in each commit
    (later ones win). A prepared source's path holds the prepared file."""
    from tether.cache.tracked import commit_pointers, work_tree_pointers
    from tether.lockfile import read_pins

    found: dict[str, str] = {}
    for commit, pins in zip(commits, committed_pins(git, commits), strict=True):
        found.update((p.path, p.key) for p in commit_pointers(git, commit))
        found.update(_pinned(pins))
    if work_tree:
        found.update((p.path, p.key) for p in work_tree_pointers(git))
        found.update(_pinned(read_pins(git.root)))
    return found


def _pinned(pins: dict[str, SourcePin]) -> dict[str, str]:
    from tether.cache.objects import valid_key

    keys = {pin.path: pin.prepared or pin.key for pin in pins.values()}
    return {path: key for path, key in keys.items() if valid_key(key)}


def committed_pins(git: Git, commits: Sequence[str]) -> list[dict[str, SourcePin]]:
    """The data sources pinned in each commit's tether.lock (one `cat-file --batch`); {}
    for a commit without one, or with one that cannot be read."""
    if not commits:
        return []
    from tether.errors import SpecError
    from tether.layout import LOCK_FILE
    from tether.lockfile import parse_pins

    request = "".join(f"{c}:{LOCK_FILE}\n" for c in commits).encode()
    out = git.run("cat-file", "--batch", input=request).stdout
    found: list[dict[str, SourcePin]] = []
    pos = 0
    for _ in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        pins: dict[str, SourcePin] = {}
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            blob = out[pos : pos + size]
            pos += size + 1
            if b'"data"' in blob:
                try:
                    pins = parse_pins(blob.decode(errors="replace"))
                except SpecError:
                    pins = {}
        found.append(pins)
    return found
