"""Work with recorded experiments: read their logs, apply, branch, rename, remove."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tether.errors import ExperimentError, GitError, GitStateError, UnsafePathError, UsageError
from tether.experiments.resolve import (
    Experiment,
    one_experiment,
    readable,
    resolve_experiment,
    with_records,
)
from tether.gitstore.experiments import ExperimentRef, list_experiments
from tether.gitstore.git import Git
from tether.gitstore.names import validate_name
from tether.layout import RECORD_LOGS_DIR, STATE_DIR, exp_ref, runs_dir
from tether.pathguard import WorkTreeGuard, check_layout
from tether.record.validate import Skipped
from tether.status import SUCCESS
from tether.structs import field, struct

# ----------------------------------------------------------------------------- logs


@struct(frozen=True)
class StageLog:
    stage: str
    text: str


def recorded_logs(git: Git, exp: ExperimentRef, stage: str | None = None) -> list[StageLog]:
    """The whole log of each stage (or of `stage`) stored in the experiment commit."""
    record = one_experiment(git, exp).run_record
    names = [s.name for s in record.stages if s.log]
    if stage is not None:
        if stage not in {s.name for s in record.stages}:
            known = ", ".join(s.name for s in record.stages) or "none"
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
    # Paths the experiment changes that lie outside this sparse checkout: left alone.
    sparse: list[str] = field(default_factory=list)


def _tree(git: Git, rev: str, *, where: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob sha) of every file in `rev`'s tree, except tether's own files.

    The tree may come from a remote: every path passes the path guard before
    anything is read from or written to the work tree, and submodule entries
    (gitlinks) are left alone, as `git checkout` leaves them.
    """
    from tether.pathguard import check_relpath

    out = git.run("ls-tree", "-r", "-z", "--full-tree", rev).stdout.decode(
        errors="surrogateescape")
    files = {}
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        check_relpath(path, where=where)
        if kind == "blob" and not (path == STATE_DIR or path.startswith(STATE_DIR + "/")):
            if mode not in ("100644", "100755", "120000"):
                raise UnsafePathError(f"refused entry {path!r} from {where}: mode {mode} is "
                                      "not a file or symlink mode git writes")
            files[path] = (mode, sha)
    return files


def _disk_shas(git: Git, paths: Iterable[str]) -> dict[str, str]:
    """The blob sha each existing path would have (clean filters and line endings applied,
    as `git add` would), for the paths present on disk."""
    root = git.root
    regular = [p for p in paths if (root / p).is_file() and not (root / p).is_symlink()]
    # --stdin-paths reads one path per line and unquotes C-style quotes: odd names go as
    # arguments, after `--`.
    plain = [p for p in regular if "\n" not in p and not p.startswith('"')]
    odd = [p for p in regular if p not in set(plain)]
    shas = {}
    if plain:
        out = git.out("hash-object", "--stdin-paths", input="\n".join(plain) + "\n")
        shas = dict(zip(plain, out.split(), strict=True))
    if odd:
        shas.update(zip(odd, git.out("hash-object", "--", *odd).split(), strict=True))
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
    where = f"experiment {exp.name!r} ({exp.commit[:10]})"
    wanted = _tree(git, exp.commit, where=where)
    gone = sorted(set(_tree(git, exp.baseline, where=f"{where}'s baseline")) - set(wanted))
    guard = _guard(git)
    check_layout(list(wanted), where=where)
    for path in [*wanted, *gone]:
        guard.target(path, where=where)  # every path checked before anything is read
    excluded = _outside_sparse_checkout(git, [*wanted, *gone])
    wanted = {p: v for p, v in wanted.items() if p not in excluded}
    gone = [p for p in gone if p not in excluded]
    disk = _disk_shas(git, [*wanted, *gone])
    head = _tree(git, "HEAD", where="HEAD") if git.resolve("HEAD") else {}
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
    _check_links(git, guard, {p: wanted[p][1] for p in to_write if wanted[p][0] == "120000"},
                 where=where)
    # Deletions first: a folder of the baseline may be a file or a link in the experiment.
    for path in to_delete:
        guard.target(path, where=where).unlink()
        _prune_empty_parents(git.root, git.root / path)
    _restore_from(git, exp.commit, to_write)
    return ApplyResult(written=to_write, deleted=to_delete, sparse=sorted(excluded))


def _mode_differs(path: Path, mode: str) -> bool:
    if mode == "120000" or not path.is_file() or path.is_symlink():
        return False
    return bool(path.stat().st_mode & 0o100) != (mode == "100755")


def _guard(git: Git) -> WorkTreeGuard:

    dirs = git.out("rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
    return WorkTreeGuard(git.root, git_dirs=tuple(git.root / d for d in dirs))


def _check_links(git: Git, guard: WorkTreeGuard, links: dict[str, str], *, where: str) -> None:
    """Refuse the experiment's symlinks whose targets lead out of the work tree."""
    if not links:
        return
    out = git.run("cat-file", "--batch", input="".join(f"{sha}\n" for sha in links.values())
                  ).stdout
    pos = 0
    for path in links:
        end = out.index(b"\n", pos)
        size = int(out[pos:end].split()[2])
        target = out[end + 1 : end + 1 + size].decode(errors="surrogateescape")
        pos = end + 1 + size + 1
        guard.check_symlink(path, target, where=where)


def _restore_from(git: Git, commit: str, paths: list[str]) -> None:
    """Write `paths` as `commit` has them, the way `git checkout` would: smudge and
    clean filters (LFS, encryption), line endings, modes and symlinks; the index is
    left alone, no hook runs, and no name is read as a pathspec pattern."""
    if not paths:
        return
    git.run("--literal-pathspecs", "-c", "core.hooksPath=/dev/null", "restore",
            f"--source={commit}", "--worktree", "--pathspec-from-file=-",
            "--pathspec-file-nul", input="\0".join(paths).encode(errors="surrogateescape"))


def _outside_sparse_checkout(git: Git, paths: list[str]) -> set[str]:
    """The paths a sparse checkout leaves out of the work tree (none if not sparse).

    Tracked paths are known by their skip-worktree bit; a path the index lacks is
    judged by the cone's directories (a non-cone pattern set cannot be asked without
    the index, so such paths are written, as `git restore` would)."""
    if git.run("config", "--bool", "core.sparseCheckout", check=False).stdout.strip() != b"true":
        return set()
    wanted = set(paths)
    listing = git.run("ls-files", "-z", "-t").stdout.decode(errors="surrogateescape")
    tracked = {e[2:] for e in listing.split("\0") if e}
    skipped = {e[2:] for e in listing.split("\0") if e.startswith("S ")} & wanted
    cone = git.run("config", "--bool", "core.sparseCheckoutCone", check=False).stdout.strip()
    if cone != b"true":
        return skipped
    dirs = git.run("sparse-checkout", "list").stdout.decode(errors="surrogateescape").split("\n")
    dirs = [d.strip("/") for d in dirs if d.strip("/")]

    def in_cone(path: str) -> bool:
        parent = path.rpartition("/")[0]
        return not parent or any(
            path.startswith(d + "/") or (d + "/").startswith(parent + "/") for d in dirs)

    return skipped | {p for p in wanted - tracked if not in_cone(p)}


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
        found = [e for e in found if e.status != SUCCESS]
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
