"""Remove cache objects (locally or on an artifact remote) that nothing kept refers to.

Kept: experiments newer than the cutoff (all of them without one), experiments
whose commits are reachable from a branch (turned into branches), the lock file
of every branch and tag tip, of queued snapshots, of HEAD and of the work tree,
the data tracked with `tether add` that any of those point to, and the inputs
(dependencies, by content key) of kept experiments.
Run-cache entries are kept while every object they name is kept.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tether.cache.objects import ObjectStore, valid_key
from tether.cache.runcache import RunCache, entry_keys
from tether.experiments.artifacts import record_outputs, tracked_data
from tether.experiments.explore import read_checked_records
from tether.gitstore.experiments import list_experiments
from tether.gitstore.git import Git
from tether.layout import LOCK_FILE, QUEUE_REFS
from tether.project import object_store
from tether.record.validate import Skipped
from tether.structs import field, struct

# Unfinished temp files older than this belong to a killed transfer.
STALE_TMP = 3600.0


@struct
class GcResult:
    where: str  # "local cache" or the remote's name
    dry: bool
    removed: list[tuple[str, int]] = field(default_factory=list)  # key, bytes
    kept: int = 0
    runs_removed: list[str] = field(default_factory=list)
    kept_experiments: int = 0
    dropped_experiments: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # refs whose record was invalid
    tmp_removed: list[str] = field(default_factory=list)  # stale uploads of killed transfers

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.removed)


def _lock_outs(blob: bytes) -> set[str]:
    try:
        stages = json.loads(blob).get("stages", {})
        return {k for s in stages.values() for k in (s.get("outs") or {}).values()
                if isinstance(k, str) and valid_key(k)}
    except (ValueError, AttributeError):
        return set()


def _kept_commits(git: Git) -> set[str]:
    """HEAD and the tips of every branch, tag and queued snapshot."""
    commits = {line.split(" ")[1] or line.split(" ")[0] for line in git.for_each_ref(
        "refs/heads", "%(objectname) %(*objectname)") + git.for_each_ref(
        "refs/tags", "%(objectname) %(*objectname)") + git.for_each_ref(
        QUEUE_REFS, "%(objectname) %(*objectname)")}
    head = git.resolve("HEAD")
    if head:
        commits.add(head)
    return commits


def _committed_locks(git: Git, commits: set[str]) -> set[str]:
    """Keys in the lock file of each commit."""
    if not commits:
        return set()
    request = "".join(f"{c}:{LOCK_FILE}\n" for c in sorted(commits)).encode()
    out = git.run("cat-file", "--batch", input=request).stdout
    keys: set[str] = set()
    pos = 0
    for _ in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            keys |= _lock_outs(out[pos : pos + size])
            pos += size + 1
    return keys


def roots(root: Path, older_than: float | None, now: float | None = None,
          skipped: list[Skipped] | None = None) -> tuple[set[str], set[str], int]:
    """Keys directly referenced by kept things, the kept experiment refs, the dropped count.

    A ref with an invalid name or record keeps nothing (its outputs cannot be known) and
    is added to `skipped`.
    """
    git = Git(root)
    commits = _kept_commits(git)
    keys = _committed_locks(git, commits)
    keys |= set(tracked_data(git, sorted(commits), work_tree=True).values())
    workspace_lock = root / LOCK_FILE
    if workspace_lock.exists():
        keys |= _lock_outs(workspace_lock.read_bytes())
    exps = list_experiments(git, skipped=skipped)
    on_branches = set(git.out("rev-list", "--branches").split()) if exps else set()
    cutoff = None if older_than is None else (now or time.time()) - older_than
    kept: set[str] = set()
    dropped = 0
    checked = read_checked_records(git, [e.commit for e in exps])
    for exp, (record, problem) in zip(exps, checked, strict=True):
        if problem is not None:
            if skipped is not None:
                skipped.append(Skipped(exp.ref, problem))
            continue
        created = float(record["created_at"])
        if cutoff is None or created >= cutoff or exp.commit in on_branches:
            keys |= {k for k in record_outputs(record).values() if valid_key(k)}
            # Its inputs too: data tracked with `tether add` is a dependency, by the same key.
            keys |= {k for stage in record.get("stages") or [] if isinstance(stage, dict)
                     for k in (stage.get("deps") or {}).values()
                     if isinstance(k, str) and valid_key(k)}
            kept.add(exp.ref)
        else:
            dropped += 1
    return keys, kept, dropped


def _expand(keys: set[str], manifest: Any) -> set[str]:
    full = set(keys)
    for key in keys:
        if key.startswith("b3d:"):
            entries = manifest(key)
            full |= {k for _, k in entries}
    return full


def gc(root: Path, older_than: float | None = None, remote: str | None = None,
       dry: bool = False, *, now: float | None = None) -> GcResult:
    """Delete unreferenced objects and run-cache entries (or, with `dry`, list them).

    Also removes the worktrees of killed `--temp` runs (not with `dry`).
    """
    if not dry:
        from tether.gitstore.worktrees import prune_stale
        from tether.layout import worktrees_dir

        prune_stale(Git(root), worktrees_dir(root))
    skipped: list[Skipped] = []
    direct, kept_exps, dropped_exps = roots(root, older_than, now, skipped)
    store = object_store(root)
    if remote is None:
        result = _gc_local(root, store, direct, dry, kept_exps, dropped_exps, now)
    else:
        result = _gc_remote(root, store, remote, direct, dry, kept_exps, dropped_exps, now)
    result.skipped = skipped
    return result


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


def _local_manifest(store: ObjectStore) -> Any:
    def manifest(key: str) -> list[tuple[str, str]]:
        return store.manifest(key) if store.path_of(key).is_file() else []
    return manifest


def _gc_local(root: Path, store: ObjectStore, direct: set[str], dry: bool,
              kept_exps: set[str], dropped_exps: int, now: float | None) -> GcResult:
    result = GcResult("local cache", dry, kept_experiments=len(kept_exps),
                      dropped_experiments=dropped_exps)
    runs = RunCache(root)
    entries = {fp: runs.get(fp) or {} for fp in runs.fingerprints()}
    keep, result.runs_removed = _split_runs(entries, direct, kept_exps, _local_manifest(store))
    if not dry:
        for fingerprint in result.runs_removed:
            runs.remove(fingerprint)
    for key in store.iter_keys():
        if key in keep:
            result.kept += 1
            continue
        result.removed.append((key, store.size(key)))
        if not dry:
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


def _stale_remote_tmp(remote: Any, limit: float) -> list[str]:
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


def _gc_remote(root: Path, store: ObjectStore, name: str, direct: set[str], dry: bool,
               kept_exps: set[str], dropped_exps: int, now: float | None) -> GcResult:
    from tether.project import open_remote

    remote = open_remote(root, name)
    remote._check_writable()
    result = GcResult(remote.name, dry, kept_experiments=len(kept_exps),
                      dropped_experiments=dropped_exps)

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
    result.tmp_removed = _stale_remote_tmp(remote, (now or time.time()) - STALE_TMP)
    if not dry:
        remote.delete([remote.run_path(fp) for fp in result.runs_removed])
        remote.delete([remote.object_path(k) for k, _ in result.removed])
        remote.delete(result.tmp_removed)
    return result
