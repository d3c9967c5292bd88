"""Sweep a cache: delete every object and run-cache entry outside a keep-set it is given.

The keep-set (object keys referenced directly, and the experiment refs whose run-cache
entries stay) is computed above the cache, from the experiments (`tether.experiments.gc`);
here it is expanded through directory manifests and everything else goes, locally or on
an artifact remote, with the temp files a killed transfer left behind.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tether.cache.objects import ObjectStore, valid_key
from tether.cache.remote import Remote
from tether.cache.runcache import RunCache, entry_keys
from tether.structs import field, struct

# Unfinished temp files older than this belong to a killed transfer.
STALE_TMP = 3600.0


@struct
class Swept:
    where: str  # "local cache" or the remote's name
    removed: list[tuple[str, int]] = field(default_factory=list)  # key, bytes
    kept: int = 0
    runs_removed: list[str] = field(default_factory=list)
    tmp_removed: list[str] = field(default_factory=list)  # stale uploads of killed transfers
    # Removed key -> "PATH of NAME" for each (path, experiment) known to have used it;
    # a removed key absent here was referenced by nothing known.
    used_by: dict[str, list[str]] = field(default_factory=dict)


# Key -> the (path, experiment name) pairs that referenced it, as the caller knows them.
Uses = dict[str, set[tuple[str, str]]]


def _expand(keys: set[str], manifest: Any) -> set[str]:
    full = set(keys)
    for key in keys:
        if key.startswith("b3d:"):
            entries = manifest(key)
            full |= {k for _, k in entries}
    return full


def _split_runs(entries: dict[str, dict[str, Any]], direct: set[str], kept_exps: set[str],
                manifest: Any) -> tuple[set[str], list[str]]:
    """All kept keys, and the run-cache entries to drop.

    An entry of a kept experiment is kept with every object it names (metric
    files included); any other entry only while all its objects are kept anyway.
    """
    direct = set(direct)
    for entry in entries.values():
        if (entry.get("experiment") or {}).get("ref") in kept_exps:
            direct |= {k for k in entry_keys(entry) if valid_key(k)}
    keep = _expand(direct, manifest)
    return keep, [fp for fp, e in entries.items() if not entry_keys(e) <= keep]


def _used_by(removed: list[tuple[str, int]], uses: Uses | None,
             dropped_entries: list[dict[str, Any]], manifest: Any) -> dict[str, list[str]]:
    """Removed key -> "PATH of NAME" labels: the caller's `uses`, the outputs of dropped
    run-cache entries, and the files inside removed directories (path within it)."""
    found: Uses = {k: set(v) for k, v in (uses or {}).items()}
    for entry in dropped_entries:
        name = (entry.get("experiment") or {}).get("name")
        outs = entry.get("outs")
        if isinstance(name, str) and isinstance(outs, dict):
            for path, key in outs.items():
                if isinstance(key, str):
                    found.setdefault(key, set()).add((str(path), name))
    gone = {key for key, _ in removed}
    for key in [k for k in found if k.startswith("b3d:") and k in gone]:
        for inner_path, inner in manifest(key):
            found.setdefault(inner, set()).update(
                (f"{path}/{inner_path}", name) for path, name in found[key])
    return {key: [f"{path} of {name}" for path, name in sorted(found[key])]
            for key in gone if found.get(key)}


def _local_manifest(store: ObjectStore) -> Any:
    def manifest(key: str) -> list[tuple[str, str]]:
        return store.manifest(key) if store.path_of(key).is_file() else []
    return manifest


def sweep_local(store: ObjectStore, runs: RunCache, direct: set[str], kept_exps: set[str],
                *, dry: bool = False, now: float | None = None, uses: Uses | None = None,
                ) -> Swept:
    """Delete (with `dry`: list) the local objects and run-cache entries not kept, and
    stale temp files; `uses` names what referenced the removed objects (`Swept.used_by`)."""
    result = Swept("local cache")
    entries = {fp: runs.get(fp) or {} for fp in runs.fingerprints()}
    manifest = _local_manifest(store)
    keep, result.runs_removed = _split_runs(entries, direct, kept_exps, manifest)
    if not dry:
        for fingerprint in result.runs_removed:
            runs.remove(fingerprint)
    for key in store.iter_keys():
        if key in keep:
            result.kept += 1
            continue
        result.removed.append((key, store.size(key)))
    result.used_by = _used_by(result.removed, uses,
                              [entries[fp] for fp in result.runs_removed], manifest)
    if not dry:
        for key, _ in result.removed:
            store.remove(key)
    tmp = store.dir / "tmp"
    if not dry and tmp.is_dir():
        limit = (now or time.time()) - STALE_TMP
        for stale in tmp.iterdir():
            if stale.stat().st_mtime < limit:
                stale.unlink(missing_ok=True)
    return result


def _modified(info: dict[str, Any]) -> float | None:
    """A remote file's modification time from its fsspec listing (backends differ), or None."""
    from datetime import datetime

    for field_name in ("mtime", "LastModified", "updated", "last_modified", "modified"):
        value = info.get(field_name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _stale_remote_tmp(remote: Remote, limit: float) -> list[str]:
    """`.tmp-*` uploads a killed push left on the remote, last modified before `limit`."""
    stale = []
    for folder in ("objects", "runs"):
        try:
            found = remote.fs.find(f"{remote.base}/{folder}", detail=True)
        except FileNotFoundError:
            continue
        for path, info in found.items():
            if str(path).rstrip("/").rsplit("/", 1)[-1].startswith(".tmp-"):
                modified = _modified(info)
                if modified is not None and modified < limit:
                    stale.append(str(path))
    return sorted(stale)


def sweep_remote(store: ObjectStore, remote: Remote, direct: set[str], kept_exps: set[str],
                 *, dry: bool = False, now: float | None = None, uses: Uses | None = None,
                 ) -> Swept:
    """The same on an artifact remote (its manifests read from `store` when there)."""
    remote._check_writable()
    result = Swept(remote.name)

    def manifest(key: str) -> list[tuple[str, str]]:
        if store.path_of(key).is_file():
            return store.manifest(key)
        try:
            data = remote.fs.cat_file(remote.object_path(key))
        except FileNotFoundError:
            return []
        from tether.cache.hashing import parse_manifest

        return parse_manifest(data)

    listed = remote.list_objects() or {}
    fingerprints = sorted(remote.list_runs() or set())

    def entry_of(fp: str) -> dict[str, Any]:
        try:
            data = json.loads(remote.fs.cat_file(remote.run_path(fp)))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    with ThreadPoolExecutor(16) as pool:
        entries = dict(zip(fingerprints, pool.map(entry_of, fingerprints), strict=True))
    keep, result.runs_removed = _split_runs(entries, direct, kept_exps, manifest)
    for key, size in sorted(listed.items()):
        if key in keep:
            result.kept += 1
        else:
            result.removed.append((key, size))
    result.used_by = _used_by(result.removed, uses,
                              [entries[fp] for fp in result.runs_removed], manifest)
    result.tmp_removed = _stale_remote_tmp(remote, (now or time.time()) - STALE_TMP)
    if not dry:
        remote.delete([remote.run_path(fp) for fp in result.runs_removed])
        remote.delete([remote.object_path(k) for k, _ in result.removed])
        remote.delete(result.tmp_removed)
    return result
