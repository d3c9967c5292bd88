"""Work with recorded experiments: read their logs, apply, branch, rename, remove."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tether.atomic import write_bytes
from tether.errors import ExperimentError, GitError, GitStateError, UsageError
from tether.gitstore.experiments import ExperimentRef, list_experiments
from tether.gitstore.git import Git
from tether.gitstore.names import validate_name
from tether.layout import RECORD_LOGS_DIR, STATE_DIR, exp_ref, runs_dir
from tether.record.validate import Skipped
from tether.resolve import Experiment, one_experiment, readable, resolve_experiment, with_records
from tether.structs import struct

# ----------------------------------------------------------------------------- logs


@struct(frozen=True)
class StageLog:
    stage: str
    text: str


def recorded_logs(git: Git, exp: ExperimentRef, stage: str | None = None) -> list[StageLog]:
    """The whole log of each stage (or of `stage`) stored in the experiment commit."""
    record = one_experiment(git, exp).record
    names = [s["name"] for s in record.get("stages", []) if s.get("log")]
    if stage is not None:
        if stage not in {s["name"] for s in record.get("stages", [])}:
            known = ", ".join(s["name"] for s in record.get("stages", [])) or "none"
            raise UsageError(f"experiment {exp.name!r} has no stage {stage!r} (stages: {known})")
        names = [stage] if stage in names else []
    logs = []
    for name in names:
        proc = git.run("cat-file", "blob", f"{exp.commit}:{RECORD_LOGS_DIR}/{name}.log",
                       check=False)
        logs.append(StageLog(name, proc.stdout.decode(errors="replace")))
    return logs


def find_run_dir(root: Path, run_id: str) -> Path | None:
    """The `.tether/runs/<id>` folder whose id starts with `run_id` (the newest if several)."""
    base = runs_dir(root)
    if not base.is_dir():
        return None
    found = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith(run_id))
    return found[-1] if found else None


def follow_run(
    run_dir: Path,
    stage: str | None = None,
    *,
    poll: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, bytes]]:
    """Yield (stage, new bytes) from a run's live logs until its record.json appears."""
    logs = run_dir / "logs"
    offsets: dict[str, int] = {}  # in the order the stage logs appeared
    while True:
        finished = (run_dir / "record.json").exists()  # checked first: drain after it appears
        if logs.is_dir():
            fresh = [p for p in logs.glob("*.log") if p.stem not in offsets]
            for path in sorted(fresh, key=lambda p: (p.stat().st_mtime_ns, p.name)):
                offsets[path.stem] = 0
        for name, offset in list(offsets.items()):
            if stage is not None and name != stage:
                continue
            with open(logs / f"{name}.log", "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            if chunk:
                offsets[name] = offset + len(chunk)
                yield name, chunk
        if finished:
            return
        sleep(poll)


# ----------------------------------------------------------------------------- apply


@struct(frozen=True)
class ApplyResult:
    written: list[str]
    deleted: list[str]


def _tree(git: Git, rev: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob sha) of every file in `rev`'s tree, except tether's own files."""
    out = git.run("ls-tree", "-r", "-z", "--full-tree", rev).stdout.decode()
    files = {}
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob" and not (path == STATE_DIR or path.startswith(STATE_DIR + "/")):
            files[path] = (mode, sha)
    return files


def _disk_shas(git: Git, paths: Iterable[str]) -> dict[str, str]:
    """The blob sha each existing path would have, for the paths present on disk."""
    root = git.root
    regular = [p for p in paths if (root / p).is_file() and not (root / p).is_symlink()]
    shas = {}
    if regular:
        out = git.out("hash-object", "--stdin-paths", input="\n".join(regular) + "\n")
        shas = dict(zip(regular, out.split(), strict=True))
    for path in paths:
        if (root / path).is_symlink():
            shas[path] = git.out("hash-object", "--stdin", input=os.readlink(root / path))
    return shas


def apply_experiment(git: Git, exp: ExperimentRef, *, force: bool = False) -> ApplyResult:
    """Make the workspace's files those of `exp`; HEAD and the index stay as they are.

    Files of the baseline that the experiment deleted are deleted. A file with
    uncommitted changes (its content differs from HEAD's) that would be overwritten
    with other content, or deleted, is an error listing them all, unless `force`.
    """
    wanted = _tree(git, exp.commit)
    gone = sorted(set(_tree(git, exp.baseline)) - set(wanted))
    disk = _disk_shas(git, [*wanted, *gone])
    head = _tree(git, "HEAD") if git.resolve("HEAD") else {}
    to_write = [p for p, (_, sha) in sorted(wanted.items())
                if disk.get(p) != sha or _mode_differs(git.root / p, wanted[p][0])]
    to_delete = [p for p in gone if (git.root / p).is_symlink() or (git.root / p).exists()]
    # Uncommitted: on disk with content other than HEAD's (and not already the wanted one).
    clobbered = [p for p in [*to_write, *to_delete] if p in disk
                 and disk[p] not in (head.get(p, ("", ""))[1], wanted.get(p, ("", ""))[1])]
    if clobbered and not force:
        # Tracked files can be committed or stashed; untracked or git-ignored ones cannot.
        changed = sorted(p for p in clobbered if p in head)
        untracked = sorted(p for p in clobbered if p not in head)
        parts, todo = [], []
        if changed:
            parts.append("uncommitted changes in:\n" + "\n".join(f"  {p}" for p in changed))
            todo.append("commit or stash the changes")
        if untracked:
            parts.append("files git does not track (untracked or git-ignored):\n"
                         + "\n".join(f"  {p}" for p in untracked))
            todo.append("move those files away")
        raise GitStateError(
            f"applying {exp.name!r} would overwrite " + "\nand ".join(parts),
            hint=" and ".join(todo) + " first, or pass --force to overwrite them",
        )
    _write_blobs(git, {p: wanted[p] for p in to_write})
    for path in to_delete:
        (git.root / path).unlink()
        _prune_empty_parents(git.root, git.root / path)
    return ApplyResult(written=to_write, deleted=to_delete)


def _mode_differs(path: Path, mode: str) -> bool:
    if mode == "120000" or not path.is_file() or path.is_symlink():
        return False
    return bool(path.stat().st_mode & 0o100) != (mode == "100755")


def _write_blobs(git: Git, files: dict[str, tuple[str, str]]) -> None:
    if not files:
        return
    request = "".join(f"{sha}\n" for _, sha in files.values()).encode()
    out = git.run("cat-file", "--batch", input=request).stdout
    pos = 0
    for path, (mode, _) in files.items():
        end = out.index(b"\n", pos)
        size = int(out[pos:end].split()[2])
        data = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
        target = git.root / path
        if target.is_symlink() or (target.exists() and mode == "120000"):
            target.unlink()
        if mode == "120000":
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(data.decode(), target)
            continue
        write_bytes(target, data, fsync=False)
        target.chmod(0o755 if mode == "100755" else 0o644)


def _prune_empty_parents(root: Path, path: Path) -> None:
    parent = path.parent
    while parent != root and root in parent.parents:
        with contextlib.suppress(OSError):
            parent.rmdir()
        if parent.exists():
            return
        parent = parent.parent


# ----------------------------------------------------------------------------- refs


def create_branch(git: Git, exp: ExperimentRef, branch: str) -> str:
    """Create `refs/heads/<branch>` at the experiment commit; an error if it exists."""
    if not git.ok("check-ref-format", "--branch", branch):
        raise UsageError(f"{branch!r} is not a valid branch name")
    ref = f"refs/heads/{branch}"
    if git.ref_value(ref):
        raise ExperimentError(f"branch {branch!r} already exists",
                              hint="choose another name, or delete it with git branch -D")
    try:
        git.update_ref(ref, exp.commit, old="", message=f"tether: branch from {exp.name}")
    except GitError as exc:
        raise ExperimentError(f"cannot create branch {branch!r}: {exc.stderr.strip()}") from exc
    return ref


def rename_experiment(git: Git, exp: ExperimentRef, new_name: str) -> ExperimentRef:
    """Move the experiment's ref to `new_name` under the same baseline, atomically."""
    validate_name(new_name)
    new_ref = exp_ref(exp.baseline, new_name)
    if git.ref_value(new_ref):
        raise ExperimentError(
            f"experiment name {new_name!r} is already used under baseline {exp.baseline[:10]}",
            hint="choose another name, or remove that experiment first",
        )
    transaction = f"start\ncreate {new_ref} {exp.commit}\ndelete {exp.ref} {exp.commit}\ncommit\n"
    try:
        git.run("update-ref", "--stdin", input=transaction)
    except GitError as exc:
        raise ExperimentError(
            f"cannot rename {exp.name!r} to {new_name!r}: {exc.stderr.strip()}",
            hint="another process changed these refs; look with `tether show -A`",
        ) from exc
    return ExperimentRef(ref=new_ref, baseline=exp.baseline, name=new_name, commit=exp.commit)


def select_for_removal(
    git: Git,
    names: list[str],
    *,
    failed: bool = False,
    older_than: float | None = None,
    all_baselines: bool = False,
    now: float | None = None,
    skipped: list[Skipped] | None = None,
) -> list[Experiment]:
    """The named experiments, or those under HEAD (or all) that failed and/or are old.

    A named experiment is chosen even if its record is invalid (that is how it goes);
    selecting by --failed / --older-than passes over such ones (added to `skipped`).
    """
    if names:
        refs = {r.ref: r for r in (resolve_experiment(git, n) for n in names)}
        return with_records(git, list(refs.values()))
    if not failed and older_than is None:
        raise UsageError("name the experiments to remove, or use --failed / --older-than")
    baseline = None if all_baselines else git.head_commit()
    found = readable(with_records(git, list_experiments(git, baseline, skipped=skipped)),
                     skipped)
    if failed:
        found = [e for e in found if e.status != "success"]
    if older_than is not None:
        cutoff = (time.time() if now is None else now) - older_than
        found = [e for e in found if e.created_at < cutoff]
    return sorted(found, key=lambda e: e.created_at)


def remove_experiments(git: Git, experiments: list[Experiment]) -> None:
    """Delete the refs of `experiments` in one transaction (all or none)."""
    if not experiments:
        return
    lines = "".join(f"delete {e.ref.ref} {e.ref.commit}\n" for e in experiments)
    try:
        git.run("update-ref", "--stdin", input=f"start\n{lines}commit\n")
    except GitError as exc:
        raise ExperimentError(
            f"nothing removed: {exc.stderr.strip()}",
            hint="another process changed these refs; look with `tether show -A`",
        ) from exc
