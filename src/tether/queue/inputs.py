"""The inputs a queued run needs, checked at enqueue and brought into place by the worker.

A queued run starts from its snapshot (HEAD plus uncommitted and untracked,
non-ignored files), so a git-ignored input such as `data/data.xml` is not
there. A dependency is available to the worker when it is in the snapshot
(or in one of its submodules, which the worker checks out), produced by a
stage of the pipeline, tracked with `tether add` (its pointer is in the
snapshot and its content in the repository cache or on the artifact remote),
or restorable from the repository cache (its hash is in `tether.lock`
and that object is in the cache): the worker puts those in place
(`restore_cached_inputs`) before the run starts. Anything else is refused at
enqueue (`MissingInputError`) instead of failing in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import MissingInputError
from tether.gitstore.git import Git
from tether.gitstore.submodules import in_submodules
from tether.lockfile import StageLock
from tether.pathguard import overlaps
from tether.spec import Pipeline
from tether.structs import struct

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore


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
    from tether.cache.tracked import external_deps

    needed: list[NeededInput] = []
    fetched = [source.path for source in pipeline.data.values()]
    for name, dep in external_deps(pipeline, order):
        if any(overlaps(dep, path) for path in fetched):
            continue  # a declared data source: the run puts it in place (see below)
        locked = lock.get(name)
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
    from tether.cache.objects import valid_key

    return item.key is not None and valid_key(item.key) and store.has(item.key)


def check_queued_inputs(
    git: Git, commit: str, pipeline: Pipeline, order: list[str],
    lock: dict[str, StageLock], open_store: Callable[[], ObjectStore],
    remote_workers: str | None = None,
) -> None:
    """Refuse (MissingInputError) a queued run whose inputs its worker could not have.

    `remote_workers`: the git remote workers on other machines fetch snapshots from
    (Celery's `queue.git_remote`); they do not share this repository's cache, so tracked
    data must go through the artifact remote (pushed at enqueue) and a cached input's
    lock hash is no help. The usual case — every input in the snapshot — asks git once
    and opens no cache."""
    if pipeline.data:
        check_pinned_sources(git, commit, pipeline, order)
    check_needed_inputs(git, commit, external_inputs(pipeline, order, lock), open_store,
                        remote_workers)


def check_needed_inputs(
    git: Git, commit: str, needed: list[NeededInput], open_store: Callable[[], ObjectStore],
    remote_workers: str | None = None,
) -> None:
    """`check_queued_inputs` for inputs already listed (e.g. from a record)."""
    wanted = sorted({item.path for item in needed})
    present = in_snapshot(git, commit, wanted)
    present |= in_submodules(git, commit, [p for p in wanted if p not in present])
    absent = [item for item in needed if item.path not in present]
    if not absent:
        return
    from tether.cache.tracked import commit_pointers

    store = open_store()
    tracked = {p.path: p.key for p in commit_pointers(git, commit)}
    if remote_workers is not None:
        _check_remote_reach(git.root, absent, tracked, remote_workers)
    missing = [item for item in absent if not _cached(store, item)
               and not _tracked(git.root, store, tracked, item.path)]
    if not missing:
        return
    lines = "\n".join(f"  {item.path} (needed by stage {item.stage!r})" for item in missing)
    paths = " ".join(sorted({item.path for item in missing}))
    raise MissingInputError(
        f"cannot queue: the queued run would not have these inputs (not in the snapshot, "
        f"which holds committed and untracked non-ignored files, not produced by any "
        f"stage, not tracked with `tether add`, not in the cache):\n{lines}",
        hint=f"track it: tether add {paths} (then commit the .tether pointer); or commit "
        f"it (git add -f {paths}); or run it here without --queue",
    )


def check_pinned_sources(git: Git, commit: str, pipeline: Pipeline, order: list[str]) -> None:
    """Refuse a queued run whose data sources are not pinned in the snapshot's tether.lock:
    each worker would fetch them anew, and could get other bytes than the next one. A
    pinned source is verified against the pin wherever it is fetched (`execute/sources.py`);
    its bytes come from the repository cache, the artifact remote, or the source."""
    from tether.execute.sources import needed_sources
    from tether.layout import LOCK_FILE
    from tether.lockfile import parse_pins

    sources = needed_sources(pipeline, order)
    if not sources:
        return
    shown = git.run("cat-file", "-p", f"{commit}:{LOCK_FILE}", check=False)
    pins = parse_pins(shown.stdout.decode(errors="replace")) if shown.returncode == 0 else {}
    unpinned = [s for s in sources if s.name not in pins]
    if unpinned:
        names = " ".join(s.name for s in unpinned)
        raise MissingInputError(
            "cannot queue: data source(s) " + ", ".join(
                f"{s.name!r} ({s.path})" for s in unpinned)
            + " not pinned in tether.lock: each worker would fetch its own bytes",
            hint=f"fetch and pin them here first: tether data fetch {names} (then queue again)",
        )


def _check_remote_reach(root: Path, absent: list[NeededInput], tracked: dict[str, str],
                        git_remote: str) -> None:
    """Workers on other machines get an input outside the snapshot only from the artifact
    remote, as data tracked with `tether add` (pushed when the entry is queued)."""
    from tether.config import get_remote
    from tether.errors import RemoteError

    def is_tracked(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in tracked)

    untracked = sorted({item.path for item in absent if not is_tracked(item.path)})
    if untracked:
        paths = " ".join(untracked)
        raise MissingInputError(
            f"cannot queue for workers on other machines (queue.git_remote: {git_remote}): "
            f"{', '.join(untracked)} is only on this machine (not in the snapshot, not "
            "tracked with `tether add`)",
            hint=f"track it: tether add {paths} (then commit the .tether pointer and set an "
            "artifact remote: tether remote add NAME URL --default)",
        )
    try:
        get_remote(root, None)
    except RemoteError:
        paths = " ".join(sorted({item.path for item in absent}))
        raise MissingInputError(
            f"cannot queue for workers on other machines (queue.git_remote: {git_remote}): "
            f"they read tracked data ({paths}) from the artifact remote, and none is set",
            hint="add one, then queue again (the data is pushed to it when queued): "
            "tether remote add NAME URL --default",
        ) from None


def _tracked(root: Path, store: ObjectStore, tracked: dict[str, str], path: str) -> bool:
    """Whether `path` (or a folder above it) is tracked data a worker can get: its content
    is in the repository cache, or an artifact remote is configured to pull it from."""
    keys = [k for p, k in tracked.items() if path == p or path.startswith(p + "/")]
    if not keys:
        return False
    if all(store.has(k) for k in keys):
        return True
    from tether.config import get_remote
    from tether.errors import RemoteError

    try:
        get_remote(root, None)
    except RemoteError:
        return False
    return True


def restore_cached_inputs(
    root: Path, pipeline: Pipeline, order: list[str], lock: dict[str, StageLock],
    store: ObjectStore,
) -> list[str]:
    """Put in place, in the work tree at `root`, inputs it lacks: data tracked with
    `tether add` (from the cache, else pulled from the artifact remote), then inputs whose
    locked hash is in the cache; the paths done."""
    from tether.cache.tracked import materialize, work_tree_pointers
    from tether.pathguard import WorkTreeGuard
    from tether.project import open_remote

    restored, _ = materialize(root, work_tree_pointers(Git(root)), store,
                              remote=lambda: open_remote(root))
    guard = WorkTreeGuard(root)
    for item in external_inputs(pipeline, order, lock):
        if (root / item.path).exists() or not _cached(store, item):
            continue
        assert item.key is not None
        # The snapshot may come from a remote: a symlinked folder must not lead outside.
        store.restore(item.key, guard.target(item.path, where="the run's inputs"))
        restored.append(item.path)
    return restored
