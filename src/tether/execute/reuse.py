"""Outputs into the content-addressed cache, and the run-cache: reuse a stage's results.

After a stage succeeds its outputs (and its metric and plot files) are stored in
`.tether/cache/objects` and a run-cache entry maps the stage's fingerprint to
them. When a later run reaches a stage with the same fingerprint (command,
dependency contents, param values), the files are restored from the cache
instead of running the stage again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.cache.hashing import StatCache
from tether.cache.runcache import RunCache
from tether.pathguard import WorkTreeGuard
from tether.spec import Stage

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore


def stage_files(stage: Stage) -> list[str]:
    """Everything a stage writes that the run-cache must bring back."""
    return list(dict.fromkeys([*stage.outs, *stage.metrics, *stage.plots]))


class Reuse:
    """The object store and run-cache of one project, used by the runner."""

    def __init__(self, root: Path, cache: StatCache) -> None:
        self.root = root
        self.runs = RunCache(root)
        self.hashes = cache
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        """The object store (reading the link settings from the config on first use)."""
        if self._store is None:
            from tether.project import object_store

            self._store = object_store(self.root)
        return self._store

    def save_outputs(self, stage: Stage, workspace: Path, known: dict[str, str | None]) -> dict[
        str, str
    ]:
        """Store the stage's files in the cache; return path -> object key."""
        saved: dict[str, str] = {}
        for path in stage_files(stage):
            full = workspace / path
            if not full.exists():
                continue
            # Metric and plot files stay plain files: they need no link settings.
            store = self.store if path in stage.outs else self._plain_store()
            saved[path] = store.save(
                full, link=path in stage.outs, digest=known.get(path), cache=self.hashes
            )
        return saved

    def _plain_store(self) -> ObjectStore:
        from tether.cache.objects import ObjectStore

        return self._store or ObjectStore(self.root, link_order=("copy",))

    def remember(
        self, fingerprint: str, files: dict[str, str], *, run_id: str, experiment: dict[str, str]
    ) -> None:
        self.runs.put(
            fingerprint,
            {"outs": files, "metrics": {}, "run_id": run_id, "experiment": experiment},
        )

    def restore(self, stage: Stage, fingerprint: str, workspace: Path) -> dict[str, Any] | None:
        """Restore the stage's files from a matching run; None when there is none here.

        A missing or corrupt object makes the entry unusable: the stage runs, and
        saving its fresh outputs replaces the corrupt object. Nothing corrupt is
        left in the workspace (each object is verified as it is restored).
        """
        entry = self.runs.get(fingerprint)
        if entry is None:
            return None
        files = entry.get("outs") or {}
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and self.store.has(k) for k in files.values()
        ):
            return None
        if set(stage.outs) - set(files):
            return None
        # An entry may have been pulled from a shared store: it restores only the files
        # this stage declares, each through the path guard.
        declared = set(stage_files(stage))
        files = {p: k for p, k in files.items() if p in declared}
        guard = WorkTreeGuard(workspace)
        where = f"run-cache entry {fingerprint[:12]} of stage {stage.name!r}"
        targets = {path: guard.target(path, where=where) for path in files}
        from tether.errors import CacheCorruptError

        for path, key in files.items():
            try:
                self.store.restore(key, targets[path])
            except CacheCorruptError:
                for done in files:  # what was restored so far belongs to no run
                    remove_path(targets[done])
                return None
        return entry


def remove_path(path: Path) -> None:
    """Delete a file or directory if it is there."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
