"""`tether checkout`: restore an experiment's (or the lock file's) outputs from the cache,
pulling what is missing from the artifact remote, every path checked before anything
is written."""

from __future__ import annotations

from pathlib import Path

from tether.cache.remote import Progress
from tether.errors import RemoteError, UnsafePathError
from tether.experiments.artifacts import record_outputs, tracked_data
from tether.experiments.explore import read_records
from tether.gitstore.git import Git
from tether.layout import LOCK_FILE
from tether.share.choose import resolve_local
from tether.structs import field, struct


def _git_dirs(root: Path) -> tuple[Path, ...]:
    """The repository's git dir and common dir: nothing from data is written there."""
    dirs = Git(root).out("rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
    return tuple(root / d for d in dirs)


@struct
class CheckoutResult:
    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pulled: int = 0
    source: str = LOCK_FILE


def wanted_outputs(root: Path, exp: str | None) -> tuple[dict[str, str], str]:
    """Output path -> key of the workspace's lock file, or of an experiment's record."""
    git = Git(root)
    if exp is None:
        from tether.lockfile import read_lock

        outs = {p: k for s in read_lock(root).values() for p, k in s.outs.items() if k}
        return {**tracked_data(git, work_tree=True), **outs}, LOCK_FILE
    ref = resolve_local(git, exp)
    outs = record_outputs(read_records(git, [ref.commit])[0])
    return {**tracked_data(git, [ref.commit]), **outs}, ref.name


def checkout(root: Path, exp: str | None = None, *, remote: str | None = None,
             progress: Progress | None = None) -> CheckoutResult:
    """Restore outputs from the cache (pulling missing objects), checking every byte."""
    from tether.cache.hashing import StatCache
    from tether.cache.objects import valid_key
    from tether.layout import tmp_dir
    from tether.pathguard import WorkTreeGuard
    from tether.project import object_store

    outs, source = wanted_outputs(root, exp)
    where = f"the outputs of {source}"
    guard = WorkTreeGuard(root, git_dirs=_git_dirs(root))
    for path, key in outs.items():  # all checked before anything is written
        guard.target(path, where=where)
        if not valid_key(key):
            raise UnsafePathError(f"refused output {path!r} from {where}: {key!r} is not an "
                                  "object key; nothing was written")
    result = CheckoutResult(source=source)
    cache = StatCache(tmp_dir(root) / "statcache.db")
    store = object_store(root)
    try:
        todo = {}
        for path, key in sorted(outs.items()):
            if cache.hash_path(root / path) == key:
                result.unchanged.append(path)
            else:
                todo[path] = key
        missing = {k for k in todo.values() if not store.has(k)}
        if missing:
            from tether.cache.remote import pull_objects
            from tether.project import open_remote

            try:
                artifact_remote = open_remote(root, remote)
            except RemoteError as exc:
                raise RemoteError(
                    f"{len(missing)} output object(s) are not in the local cache, and "
                    f"{exc.message}",
                    hint="add the artifact remote that has them: tether remote add NAME URL "
                    "--default (or name one with --remote NAME)",
                ) from exc
            pulled = pull_objects(store, artifact_remote, missing, progress=progress)
            result.pulled = len(pulled.sent)
        for key in {k for k in todo.values() if k.startswith("b3d:")}:
            store.manifest(key)  # every directory's paths checked before anything is written
        for path, key in todo.items():
            store.restore(key, guard.target(path, where=where))
            result.restored.append(path)
    finally:
        cache.close()
    return result
