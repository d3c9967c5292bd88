"""Remove cache objects (locally or on an artifact remote) that nothing kept refers to.

This module computes the keep-set from the experiments; `tether.cache.sweep` deletes
everything else. Kept: experiments newer than the cutoff (all of them without one), experiments
whose commits are reachable from a branch (turned into branches), the lock file
of every branch and tag tip, of queued snapshots, of HEAD and of the work tree,
the data tracked with `tether add` that any of those point to, and the inputs
(dependencies, by content key) of kept experiments.
Run-cache entries are kept while every object they name is kept.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tether.cache.objects import valid_key
from tether.cache.runcache import RunCache
from tether.cache.sweep import Uses, sweep_local, sweep_remote
from tether.experiments.artifacts import record_inputs, record_outputs, tracked_data
from tether.experiments.explore import read_checked_records
from tether.gitstore.experiments import list_experiments
from tether.gitstore.git import Git
from tether.layout import LOCK_FILE, QUEUE_REFS
from tether.project import object_store
from tether.record.record import RunRecord
from tether.record.validate import Skipped
from tether.structs import field, struct


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
    # The viewer's kept step columns of commits no experiment ref points to (files, bytes).
    columns_removed: tuple[int, int] = (0, 0)
    # Removed key -> "PATH of NAME" for the experiments known to have used it (dropped
    # ones, run-cache entries); a key absent here was referenced by nothing known.
    used_by: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.removed)


def _lock_outs(blob: bytes) -> set[str]:
    """The outputs' keys of a lock, and its pinned data sources' (fetched and prepared)."""
    try:
        lock = json.loads(blob)
        stages = lock.get("stages", {})
        keys = [k for s in stages.values() for k in (s.get("outs") or {}).values()]
        keys += [pin.get(field) for pin in (lock.get("data") or {}).values()
                 for field in ("key", "prepared")]
        return {k for k in keys if isinstance(k, str) and valid_key(k)}
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
          skipped: list[Skipped] | None = None, uses: Uses | None = None,
          ) -> tuple[set[str], set[str], int]:
    """Keys directly referenced by kept things, the kept experiment refs, the dropped count.

    A ref with an invalid name or record keeps nothing (its outputs cannot be known) and
    is added to `skipped`. `uses` gets, per key, the (path, name) of the dropped
    experiments' outputs and inputs.
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
        assert record is not None
        if cutoff is None or record.created_at >= cutoff or exp.commit in on_branches:
            keys |= {k for k in record_outputs(record).values() if valid_key(k)}
            # Its inputs too: data tracked with `tether add` is a dependency, by the same key.
            keys |= {k for k in record_inputs(record) if valid_key(k)}
            kept.add(exp.ref)
        else:
            dropped += 1
            if uses is not None:
                _note_uses(uses, record)
    return keys, kept, dropped


def _note_uses(uses: Uses, record: RunRecord) -> None:
    """Add what `record` referenced to `uses`: its outputs and its inputs, by path."""
    for path, key in record_outputs(record).items():
        uses.setdefault(key, set()).add((path, record.name))
    for stage in record.stages:
        for path, dep_key in stage.deps.items():
            if isinstance(dep_key, str) and valid_key(dep_key):
                uses.setdefault(dep_key, set()).add((path, record.name))


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
    uses: Uses = {}
    direct, kept_exps, dropped_exps = roots(root, older_than, now, skipped, uses)
    store = object_store(root)
    columns = (0, 0)
    if remote is None:
        swept = sweep_local(store, RunCache(root), direct, kept_exps, dry=dry, now=now,
                            uses=uses)
        from tether.record.stepfiles import sweep_columns

        refs = {e.commit for e in list_experiments(Git(root))}
        columns = sweep_columns(root, refs, dry=dry)
    else:
        from tether.project import open_remote

        swept = sweep_remote(store, open_remote(root, remote), direct, kept_exps, dry=dry,
                             now=now, uses=uses)
    return GcResult(swept.where, dry, removed=swept.removed, kept=swept.kept,
                    runs_removed=swept.runs_removed, kept_experiments=len(kept_exps),
                    dropped_experiments=dropped_exps, skipped=skipped,
                    tmp_removed=swept.tmp_removed, used_by=swept.used_by,
                    columns_removed=columns)


