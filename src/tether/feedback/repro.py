"""`tether repro`: run an experiment again from its record alone, and say whether it
reproduced.

The run starts from a *reproduction snapshot*: a commit whose parent is the
experiment's baseline and whose tree is the experiment's own tree (its code with the
uncommitted changes it ran with, its params files as applied) without the record and
the logs tether stored beside it. Run locally (`reproduce`, in a worktree under
`.tether/worktrees/`) or by a queue worker (`enqueue_repro`), every stage is forced
and the run-cache is off; the new record says `reproduces: {id, ref, commit, name,
tolerances, origin}`, so the verdict (`feedback.reproverdict`) can be worked out from
the two records anywhere, at any time.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from tether.errors import ExperimentError, UsageError
from tether.experiments.resolve import Experiment, one_experiment, resolve_experiment
from tether.feedback.reproverdict import ReproVerdict, judge_reproduction, parse_tolerances
from tether.gitstore.experiments import taken_names
from tether.gitstore.git import Git, ident_of
from tether.layout import RECORD_LOGS_DIR, RECORD_PATH, STATE_DIR
from tether.pathguard import check_relpath, overlaps
from tether.queue.base import DEFAULT_QUEUE, Entry
from tether.record.record import RunRecord
from tether.structs import struct

if TYPE_CHECKING:
    from tether.execute.events import RunEvent

LAST_MAIN_BUILD = "last-main-build"
REPRO_SUFFIX = "-repro"
SEED = "TETHER_SEED"


def resolve_target(git: Git, target: str, *, fetch: bool = True) -> Experiment:
    """The experiment `target` names: a name, prefix or ref, or `last-main-build` (the
    newest successful experiment of the main branch's history that is no reproduction)."""
    if target.strip() == LAST_MAIN_BUILD:
        return _last_main_build(git, fetch=fetch)
    return one_experiment(git, resolve_experiment(git, target))


def _last_main_build(git: Git, *, fetch: bool) -> Experiment:
    from tether.experiments.index import refresh
    from tether.feedback.gate import open_gate
    from tether.feedback.history import find_main_commit

    gate = open_gate(git.root, fetch=fetch)
    index = refresh(git)
    try:
        found, search, index = find_main_commit(
            git, index, gate.rev, depth=gate.settings.depth, remote=gate.remote, fetch=fetch)
    finally:
        index.close()
    if found is None:
        raise ExperimentError(
            f"no main build: no successful experiment on the first {search.walked} commits "
            f"of {gate.rev}'s history",
            hint="record one on the main branch (tether run), or name the experiment")
    newest = found.originals(git).experiments[-1]
    return one_experiment(git, resolve_experiment(git, newest.ref))


def reproduces_field(exp: Experiment, tolerances: Mapping[str, str] | None,
                     origin: str | None) -> dict[str, Any]:
    """What the reproduction's record says of its original (tolerances checked now)."""
    record = exp.run_record
    return {
        "id": record.id, "ref": exp.ref.ref, "commit": exp.ref.commit, "name": exp.ref.name,
        "tolerances": parse_tolerances(tolerances or {}), "origin": origin,
    }


def snapshot_commit(git: Git, exp: Experiment) -> str:
    """A commit of `exp`'s tree without its record and logs, on top of its baseline
    (a few git calls; nothing is checked out and no ref is written)."""
    commit = exp.ref.commit
    parents = git.out("rev-list", "--parents", "-n", "1", commit).split()[1:]
    if exp.ref.baseline not in parents or not git.resolve(exp.ref.baseline):
        raise ExperimentError(
            f"experiment {exp.ref.name!r} is not a commit on top of its baseline "
            f"{exp.ref.baseline[:10]}: it cannot be reproduced",
            hint="fetch the baseline commit (git fetch), or it was not recorded by tether")
    dropped = {posixpath.basename(RECORD_PATH), posixpath.basename(RECORD_LOGS_DIR)}
    state = _tree_lines(git, f"{commit}:{STATE_DIR}", check=False)
    kept = [line for line in state if line.split("\t", 1)[1] not in dropped]
    top = [line for line in _tree_lines(git, commit) if line.split("\t", 1)[1] != STATE_DIR]
    if kept:
        top.append(f"040000 tree {_mktree(git, kept)}\t{STATE_DIR}")
    tree = _mktree(git, top)
    name, _, email = ident_of(git.run("var", "GIT_COMMITTER_IDENT", check=False)) \
        .rstrip(">").partition(" <")
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    message = f"tether: reproduction of {exp.ref.name}\n"
    return git.out("commit-tree", tree, "-p", exp.ref.baseline, input=message, env=env)


def _tree_lines(git: Git, treeish: str, *, check: bool = True) -> list[str]:
    proc = git.run("ls-tree", "-z", treeish, check=check)
    if proc.returncode != 0:
        return []
    return [line for line in proc.stdout.decode(errors="surrogateescape").split("\0") if line]


def _mktree(git: Git, lines: list[str]) -> str:
    data = "".join(f"{line}\0" for line in lines).encode(errors="surrogateescape")
    return git.out("mktree", "-z", input=data)


def run_arguments(record: RunRecord) -> dict[str, Any]:
    """Targets, bare command, its settings and working directory, from the record.

    Paths from the record pass the path guard: a record may come from a remote.
    """
    if record.kind != "command":
        return {"targets": [str(t) for t in record.targets], "command": None,
                "limits": {}, "wdir": "."}
    argv = [str(a) for a in record.argv]
    if "--" not in argv:
        raise ExperimentError(f"experiment {record.name!r} ran a bare command its record "
                              "does not hold (no `--` in argv): it cannot be reproduced")
    command = argv[argv.index("--") + 1:]
    stages = record.spec.get("stages") or {}
    stage: Any = next(iter(stages.values()), {}) if isinstance(stages, dict) else {}
    stage = stage if isinstance(stage, dict) else {}
    wdir = str(stage.get("wdir") or ".")
    if wdir != ".":
        check_relpath(wdir, where=f"the record of {record.name!r} (its working directory)")
    limits: dict[str, Any] = {}
    for key in ("timeout", "stall_timeout", "expected"):
        if isinstance(stage.get(key), int | float) and not isinstance(stage.get(key), bool):
            limits[key] = float(stage[key])
    for key in ("metrics", "plots"):
        files = [check_relpath(str(f), where=f"the record of {record.name!r} ({key})")
                 for f in stage.get(key) or []]
        if files:
            limits[key] = [posixpath.relpath(f, wdir) for f in files]
    return {"targets": [], "command": command, "limits": limits, "wdir": wdir}


def recorded_seed(record: RunRecord) -> str | None:
    """The `TETHER_SEED` the original ran with (a `--repeat` copy), from its environment."""
    variables = record.environment.get("env_vars")
    seed = variables.get(SEED) if isinstance(variables, dict) else None
    return seed if isinstance(seed, str) and seed.isdigit() else None


@contextlib.contextmanager
def _seeded(seed: str | None) -> Iterator[None]:
    """`TETHER_SEED` as the original had it (or not), while the reproduction runs here."""
    previous = os.environ.pop(SEED, None)
    if seed is not None:
        os.environ[SEED] = seed
    try:
        yield
    finally:
        os.environ.pop(SEED, None)
        if previous is not None:
            os.environ[SEED] = previous


def repro_name(exp: Experiment, taken: set[str]) -> str:
    """`<name>-repro`, or `<name>-repro-2`... when taken (the ref's name, validated; not
    the record's, which a remote may have written anything into)."""
    stem = f"{exp.ref.name[:60]}{REPRO_SUFFIX}"
    name, counter = stem, 2
    while name in taken:
        name, counter = f"{stem}-{counter}", counter + 1
    return name


def enqueue_repro(project_root: Path, target: str, *,
                  tolerances: Mapping[str, str] | None = None,
                  origin: str | None = None, queue: str = DEFAULT_QUEUE) -> Entry:
    """Queue a reproduction of `target` (see `resolve_target`) on `queue` for a worker;
    the entry (its name is the reproduction's).

    `tolerances`: metric -> `VALUE` (absolute) or `VALUE%` (relative), over the spec's.
    `origin` says who asked (e.g. `schedule:nightly-repro`); it is kept in the record.
    """
    from tether.ids import new_id, new_run_id
    from tether.layout import QUEUE_REFS
    from tether.queue.client import open_enqueuer

    git = Git(project_root)
    exp = resolve_target(git, target)
    record = exp.run_record
    reproduces = reproduces_field(exp, tolerances, origin)
    arguments = run_arguments(record)
    now = time.time()
    backend = open_enqueuer(project_root)
    try:
        baseline = exp.ref.baseline
        name = repro_name(exp, taken_names(git, baseline) | backend.reserved_names(baseline))
        commit = snapshot_commit(git, exp)
        _check_inputs(git, commit, record, getattr(backend, "git_remote", None))
        snapshot_ref = f"{QUEUE_REFS}{new_id()}"
        git.update_ref(snapshot_ref, commit, old="")
        entry = Entry(
            id=new_id(), name=name, baseline=baseline, snapshot=commit,
            snapshot_ref=snapshot_ref, run_id=new_run_id(now),
            targets=tuple(arguments["targets"]),
            command=tuple(arguments["command"]) if arguments["command"] is not None else None,
            limits=arguments["limits"], wdir=arguments["wdir"],
            env={SEED: seed} if (seed := recorded_seed(record)) is not None else {},
            message=f"reproduction of {exp.ref.name}", force=True, created_at=now,
            reproduces=reproduces, requires=_requirements(record), queue=queue,
        )
        try:
            backend.enqueue([entry], now)
        except BaseException:
            git.run("update-ref", "-d", snapshot_ref, check=False)
            raise
    finally:
        backend.close()
    from tether.feedback.listeners import announce_queued

    announce_queued(project_root, entry)
    return entry


def _requirements(record: RunRecord) -> tuple[str, ...]:
    """The worker tags the original's stages `require`d (from its recorded spec), so the
    reproduction goes to a worker that can run it, as `run --queue` would send it."""
    from tether.queue.base import check_tags

    stages = record.spec.get("stages") if record.kind != "command" else None
    if not isinstance(stages, dict):
        return ()
    wanted = [str(tag) for ran in record.stages if isinstance(spec := stages.get(ran.name), dict)
              and isinstance(spec.get("require"), list) for tag in spec["require"]]
    return check_tags(wanted, f"the `require:` recorded by {record.name!r}")


def _check_inputs(git: Git, commit: str, record: RunRecord,
                  remote_workers: str | None) -> None:
    """Refuse to queue a reproduction whose worker would lack an input (as `run --queue`):
    the dependencies no stage of the original's spec produces, with the hashes it read.
    `remote_workers`: as for `check_queued_inputs` (Celery workers on other machines)."""
    from tether.project import object_store
    from tether.queue.inputs import NeededInput, check_needed_inputs

    stages = record.spec.get("stages") if record.kind != "command" else None
    if not isinstance(stages, dict):
        return
    produced = {str(out) for stage in stages.values() if isinstance(stage, dict)
                for out in stage.get("outs") or ()}
    needed = []
    for ran in record.stages:
        for dep in (stages.get(ran.name) or {}).get("deps") or ():
            dep = check_relpath(str(dep), where=f"the spec recorded by {record.name!r}")
            if not any(overlaps(dep, out) for out in produced):
                key = ran.deps.get(dep)
                needed.append(NeededInput(ran.name, dep, key if isinstance(key, str) else None))
    check_needed_inputs(git, commit, needed, lambda: object_store(git.root), remote_workers)


@struct
class ReproOutcome:
    """A reproduction run locally: the original, the new run, and the verdict."""

    original: Experiment
    record: RunRecord
    ref: str
    commit: str
    verdict: ReproVerdict


def reproduce(project_root: Path, target: str, *,
              tolerances: Mapping[str, str] | None = None, origin: str | None = None,
              echo: BinaryIO | None = None,
              on_event: Callable[[RunEvent], None] | None = None) -> ReproOutcome:
    """Run `target` again here, in a worktree under `.tether/worktrees/` from its
    reproduction snapshot, every stage forced and the run-cache off; record it (linked
    to the original) and judge it. The user's work tree, index and HEAD are not touched.

    Inputs git does not hold come from the cache by the hash the original recorded,
    else from the work tree as it is now (as `run --temp` takes them).
    """
    from tether.execute.runner import RunContext, RunOptions, run
    from tether.gitstore import worktrees
    from tether.ids import new_run_id
    from tether.layout import worktrees_dir
    from tether.project import ensure_state_dir

    git = Git(project_root)
    ensure_state_dir(project_root)
    original = resolve_target(git, target)
    record = original.run_record
    reproduces = reproduces_field(original, tolerances, origin)
    arguments = run_arguments(record)
    run_id = new_run_id(time.time())
    path = worktrees_dir(project_root) / f"repro-{run_id}"
    worktrees.prune_stale(git, path.parent)
    commit = snapshot_commit(git, original)
    if record.redacted_files and on_event is not None:
        from tether.execute.events import RunEvent

        on_event(RunEvent("warning", None, _redacted_warning(record)))
    try:
        worktrees.add_worktree(git, path, original.ref.baseline, contents=commit)
        cwd = path / arguments["wdir"]
        _bring_inputs(git, path, arguments, cwd)
        taken = taken_names(git, original.ref.baseline)
        options = RunOptions(
            targets=arguments["targets"], name=repro_name(original, taken),
            message=f"reproduction of {original.ref.name}", force=True, no_run_cache=True,
            command=arguments["command"], command_limits=arguments["limits"], echo=echo,
            on_event=on_event, argv=["tether", "repro", target],
        )
        context = RunContext(baseline=original.ref.baseline, run_id=run_id,
                             state_root=project_root, reproduces=reproduces)
        with _seeded(recorded_seed(record)):
            result = run(cwd, options, context)
    finally:
        worktrees.remove_worktree(git, path)
    assert result.record is not None and result.ref is not None
    verdict = judge_reproduction(record, result.record, original.ref.ref, result.ref.ref)
    return ReproOutcome(original, result.record, result.ref.ref, result.ref.commit, verdict)


def _redacted_warning(record: RunRecord) -> str:
    files = ", ".join(sorted(record.redacted_files))
    return (f"{files} of {record.name!r} were stored with secret values replaced "
            "([redacted:NAME]); the reproduction reads them as stored")


def _bring_inputs(git: Git, path: Path, arguments: dict[str, Any], cwd: Path) -> None:
    """The run's inputs that no stage produces and the snapshot lacks (see `reproduce`)."""
    from tether.cache.tracked import external_deps
    from tether.execute.workspace import bring_inputs
    from tether.lockfile import read_lock
    from tether.project import load_project_pipeline, object_store
    from tether.queue.inputs import restore_cached_inputs

    pipeline = load_project_pipeline(path, arguments["command"], arguments["limits"], cwd)
    order = pipeline.order(arguments["targets"] or None)
    if arguments["command"] is None:
        restore_cached_inputs(path, pipeline, order, read_lock(path), object_store(git.root))
    bring_inputs(git, path, [dep for _, dep in external_deps(pipeline, order)])


def check_target(text: str) -> str:
    """A target as given on the command line (not blank)."""
    if not text.strip():
        raise UsageError("tether repro: name the experiment to reproduce",
                         hint=f"an experiment name, ref or commit prefix, or {LAST_MAIN_BUILD}")
    return text.strip()
