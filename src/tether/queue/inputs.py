"""The inputs a queued run needs, checked at enqueue and brought into place by the worker.

A queued run starts from its snapshot (HEAD plus uncommitted and untracked,
non-ignored files), so a git-ignored input such as `data/data.xml` is not
there. A dependency is available to the worker when it is in the snapshot,
produced by a stage of the pipeline, or restorable from the repository cache
(its hash is in `tether.lock` and that object is in the cache): the worker
restores those (`restore_cached_inputs`) before the run starts. Anything else
is refused at enqueue (`MissingInputError`) instead of failing in the worker.
"""

from __future__ import annotations

from pathlib import Path

from tether.cache.objects import ObjectStore, valid_key
from tether.errors import MissingInputError
from tether.gitstore.git import Git
from tether.lockfile import StageLock
from tether.spec import Pipeline
from tether.structs import struct


@struct(frozen=True)
class NeededInput:
    """A dependency of a stage that no stage produces."""

    stage: str
    path: str
    key: str | None  # its hash in tether.lock, if any


def external_inputs(
    pipeline: Pipeline, order: list[str], lock: dict[str, StageLock]
) -> list[NeededInput]:
    """Dependencies of the stages in `order` that no stage of the pipeline produces."""
    produced = {out for stage in pipeline.stages.values() for out in stage.outs}
    needed: list[NeededInput] = []
    for name in order:
        locked = lock.get(name)
        for dep in pipeline.stages[name].deps:
            if any(dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")
                   for out in produced):
                continue
            key = locked.deps.get(dep) if locked is not None else None
            needed.append(NeededInput(name, dep, key if isinstance(key, str) else None))
    return needed


def in_snapshot(git: Git, commit: str, paths: list[str]) -> set[str]:
    """Which of `paths` (files or directories) the commit's tree holds (one git call)."""
    if not paths:
        return set()
    out = git.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, "--",
                  *paths).stdout.decode(errors="replace")
    listed = [name for name in out.split("\0") if name]
    return {path for path in paths
            if any(name == path or name.startswith(path.rstrip("/") + "/") for name in listed)}


def _cached(store: ObjectStore, item: NeededInput) -> bool:
    return item.key is not None and valid_key(item.key) and store.has(item.key)


def check_queued_inputs(
    git: Git, commit: str, pipeline: Pipeline, order: list[str],
    lock: dict[str, StageLock], store: ObjectStore,
) -> None:
    """Refuse (MissingInputError) a queued run whose inputs its worker could not have."""
    needed = external_inputs(pipeline, order, lock)
    present = in_snapshot(git, commit, sorted({item.path for item in needed}))
    missing = [item for item in needed if item.path not in present and not _cached(store, item)]
    if not missing:
        return
    lines = "\n".join(f"  {item.path} (needed by stage {item.stage!r})" for item in missing)
    paths = " ".join(sorted({item.path for item in missing}))
    raise MissingInputError(
        f"cannot queue: the queued run would not have these inputs (not in the snapshot, "
        f"which holds committed and untracked non-ignored files, not produced by any "
        f"stage, not in the cache):\n{lines}",
        hint=f"commit it (git add -f {paths}); or track it with tether (coming: `tether add`, "
        f"and `tether run --queue --copy {paths}` to send it with the run); or run it here "
        "without --queue",
    )


def restore_cached_inputs(
    root: Path, pipeline: Pipeline, order: list[str], lock: dict[str, StageLock],
    store: ObjectStore,
) -> list[str]:
    """Restore, from the cache, inputs missing from the work tree at `root`; the paths done."""
    restored = []
    for item in external_inputs(pipeline, order, lock):
        target = root / item.path
        if target.exists() or not _cached(store, item):
            continue
        assert item.key is not None
        store.restore(item.key, target)
        restored.append(item.path)
    return restored
