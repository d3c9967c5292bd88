"""What a client does with the queue: enqueue runs and sweeps, inspect, kill, remove, retry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tether.errors import ExperimentError, QueueError, UsageError
from tether.execute.facts import RunFacts
from tether.gitstore.experiments import taken_names
from tether.gitstore.git import Git
from tether.gitstore.names import generate_name, validate_name
from tether.gitstore.snapshot import drop_unreferenced
from tether.ids import new_id, new_run_id
from tether.layout import QUEUE_REFS, queue_db, queue_dir, tmp_dir
from tether.lockfile import read_lock
from tether.queue.base import (
    CANCELLED,
    DEFAULT_QUEUE,
    FAILED,
    RUNNING,
    WAITING,
    Entry,
    EventHook,
    QueueBackend,
    WorkerInfo,
    can_run,
    check_queue_name,
    unknown_entry,
)
from tether.queue.sweep import SweepPoint, expand
from tether.spec import Pipeline
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore

BACKENDS = ("embedded", "celery")


def backend_name(root: Path) -> str:
    """The backend chosen by `queue.backend` in the project config (default embedded)."""
    from tether.queue.celery.settings import queue_section

    name = queue_section(root).get("backend", "embedded")
    if name not in BACKENDS:
        raise UsageError(f"queue.backend: {name!r} is not one of {', '.join(BACKENDS)}",
                         hint="set queue.backend in .tether/config.yaml")
    return str(name)


def open_queue(root: Path, on_event: EventHook | None = None,
               backend: str | None = None) -> QueueBackend:
    """The queue backend of the project at `root` (`backend`: this one, not the configured)."""
    if (backend or backend_name(root)) == "celery":
        try:
            import importlib

            module: Any = importlib.import_module("tether.queue.celery.backend")
        except ImportError as exc:
            from tether.queue.celery.settings import celery_extra_missing

            raise celery_extra_missing(exc) from None
        celery: QueueBackend = module.open_backend(root, on_event)
        return celery
    from tether.queue.embedded import EmbeddedQueue

    return EmbeddedQueue(queue_db(root), queue_dir(root) / "logs", on_event)


class Enqueuer(Protocol):
    """What `enqueue` needs of a backend (every `QueueBackend` is one)."""

    def reserved_names(self, baseline: str) -> set[str]: ...

    def enqueue(self, entries: Sequence[Entry], now: float) -> None: ...

    def close(self) -> None: ...


def open_enqueuer(root: Path) -> Enqueuer:
    """What `enqueue` writes to: for Celery only its state store (no Celery, no redis-py)."""
    if backend_name(root) == "celery":
        from tether.queue.celery.client import open_enqueuer as open_celery_enqueuer

        return open_celery_enqueuer(root)
    return open_queue(root)


@struct
class QueueRequest:
    """`tether run --queue`: what to run, how often, where."""

    targets: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    name: str | None = None
    message: str = ""
    force: bool = False
    command: list[str] | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    repeat: int = 1
    requires: tuple[str, ...] = ()  # worker tags, besides those the stages `require`


def _validate(
    root: Path, cwd: Path, request: QueueRequest, points: list[SweepPoint]
) -> tuple[str, Pipeline, list[str]]:
    """Check spec, targets and every point's overrides now.

    Returns the bare command's wdir, the pipeline and the stages the entries run.
    """
    from tether.parameters import apply_overrides, load_params, parse_override
    from tether.project import load_project_pipeline

    pipeline = load_project_pipeline(root, request.command, request.limits, cwd)
    order = pipeline.order(request.targets or None)
    files = {ref.file for stage in pipeline.stages.values() for ref in stage.params}
    parsed = [[parse_override(text) for text in point.overrides] for point in points]
    files |= {ov.file for overrides in parsed for ov in overrides if not ov.allow_new}
    base = load_params(root, files, tmp_dir(root) / "params-cache.json")
    seen: set[tuple[str, ...]] = set()
    for point, overrides in zip(points, parsed, strict=True):
        if point.overrides not in seen:
            seen.add(point.overrides)
            apply_overrides(base.copy(), overrides)
    if request.command is None:
        return ".", pipeline, order
    return next(iter(pipeline.stages.values())).wdir, pipeline, order


def _plain_store(root: Path) -> ObjectStore:
    from tether.cache.objects import ObjectStore

    return ObjectStore(root, link_order=("copy",))


def _names(request: QueueRequest, count: int, reserved: set[str], baseline: str) -> list[str]:
    if request.name is None:
        names = []
        for _ in range(count):
            names.append(generate_name(reserved))
            reserved.add(names[-1])
        return names
    validate_name(request.name)
    names = [request.name] if count == 1 else [f"{request.name}-{i + 1}" for i in range(count)]
    for name in names:
        validate_name(name)
        if name in reserved:
            raise ExperimentError(
                f"experiment name {name!r} is already used under baseline {baseline[:10]} "
                "(by an experiment or a queued entry)",
                hint="choose another name with -n",
            )
    return names


def enqueue(cwd: Path, request: QueueRequest, backend: Enqueuer | None = None,
            now: float | None = None, facts: RunFacts | None = None,
            on_warning: Callable[[str], None] | None = None) -> list[Entry]:
    """Snapshot the workspace once and queue one entry per sweep point.

    `facts`: `RunFacts(cwd, code=False, snapshot=True)` if the caller started them early
    (the snapshot is then committed while this checks the request). `on_warning`
    hears what the snapshot could not take (files over the size cap, submodule edits).
    """
    from tether.project import ensure_state_dir
    from tether.queue.inputs import check_queued_inputs

    now = time.time() if now is None else now
    facts = facts or RunFacts(cwd, code=False, snapshot=True)
    own = backend is None
    try:
        state = facts.state
        root, git = state.root, Git(state.root)
        ensure_state_dir(root)
        check_queue_name(request.queue)
        points = expand(request.overrides, request.repeat)
        wdir, pipeline, order = _validate(root, cwd, request, points)
        requires = tuple(sorted({*request.requires, *pipeline.requirements(order)}))
        backend = backend or open_enqueuer(root)
        reserved = facts.taken_names() | backend.reserved_names(state.head)
        names = _names(request, len(points), reserved, state.head)
        snapshot = facts.snapshot()
        try:
            check_queued_inputs(git, snapshot.commit, pipeline, order, read_lock(root),
                                lambda: _plain_store(root),
                                remote_workers=getattr(backend, "git_remote", None))
        except BaseException:
            git.run("update-ref", "-d", snapshot.ref, check=False)
            raise
        # The message is stored in the queue and the record: never with a secret in it.
        message = request.message
        if message:
            from tether.record.redact import discover

            message = discover(root=root).scrub(message)
        for warning in snapshot.warnings:
            if on_warning is not None:
                on_warning(warning)
        entries = _entries(request, points, names, wdir, message, state.head,
                           snapshot.commit, snapshot.ref, now, requires)
        try:
            backend.enqueue(entries, now)
        except BaseException:
            git.run("update-ref", "-d", snapshot.ref, check=False)
            raise
        return entries
    finally:
        facts.close()
        if own and backend is not None:
            backend.close()


def _entries(request: QueueRequest, points: list[SweepPoint], names: list[str], wdir: str,
             message: str, baseline: str, snapshot: str, snapshot_ref: str,
             now: float, requires: tuple[str, ...]) -> list[Entry]:
    return [
        Entry(
            id=new_id(), name=name, baseline=baseline, snapshot=snapshot,
            snapshot_ref=snapshot_ref, run_id=new_run_id(now), queue=request.queue,
            priority=request.priority, targets=tuple(request.targets),
            overrides=point.overrides,
            command=tuple(request.command) if request.command is not None else None,
            limits=dict(request.limits), wdir=wdir, env=dict(point.env),
            message=message, force=request.force, created_at=now, requires=requires,
        )
        for point, name in zip(points, names, strict=True)
    ]


def enqueue_commit(root: Path, commit: str, request: QueueRequest, backend: QueueBackend,
                   now: float) -> list[Entry]:
    """Queue `request` to run `commit` as it is (no workspace snapshot): the commit is
    both the entries' snapshot and their baseline, as a followed push is. The request is
    checked against the spec and params of the work tree at `root`, like `enqueue`."""
    from tether.queue.inputs import check_queued_inputs

    check_queue_name(request.queue)
    git = Git(root)
    points = expand(request.overrides, request.repeat)
    wdir, pipeline, order = _validate(root, root, request, points)
    check_queued_inputs(git, commit, pipeline, order, read_lock(root), lambda: _plain_store(root),
                        remote_workers=getattr(backend, "git_remote", None))
    requires = tuple(sorted({*request.requires, *pipeline.requirements(order)}))
    reserved = taken_names(git, commit) | backend.reserved_names(commit)
    names = _names(request, len(points), reserved, commit)
    snapshot_ref = f"{QUEUE_REFS}commit-{new_id()}"
    git.update_ref(snapshot_ref, commit)
    entries = _entries(request, points, names, wdir, request.message, commit, commit,
                       snapshot_ref, now, requires)
    try:
        backend.enqueue(entries, now)
    except BaseException:
        git.run("update-ref", "-d", snapshot_ref, check=False)
        raise
    return entries


def resolve_entries(
    backend: QueueBackend, ids: Iterable[str], states: Iterable[str] = ()
) -> list[Entry]:
    """Entries named by id (or prefix), plus every entry in `states`."""
    chosen: dict[str, Entry] = {}
    for entry_id in ids:
        entry = backend.get(entry_id)
        if entry is None:
            raise unknown_entry(entry_id)
        chosen[entry.id] = entry
    wanted = list(states)
    if wanted:
        for entry in backend.entries(states=wanted):
            chosen.setdefault(entry.id, entry)
    return list(chosen.values())


def kill(backend: QueueBackend, entries: list[Entry], now: float | None = None) -> list[Entry]:
    """Cancel waiting entries and ask the workers of running ones to stop them."""
    now = time.time() if now is None else now
    return [backend.request_kill(entry.id, now) for entry in entries]


def remove(root: Path, backend: QueueBackend, entries: list[Entry],
           now: float | None = None) -> list[Entry]:
    """Forget entries (not running), their logs, and snapshots nobody uses any more."""
    import shutil  # here, not at the top: enqueue does without it

    now = time.time() if now is None else now
    removed = backend.remove([entry.id for entry in entries])
    for entry in removed:
        shutil.rmtree(queue_dir(root) / "logs" / entry.id, ignore_errors=True)
    referenced = {entry.snapshot_ref for entry in backend.entries()}
    drop_unreferenced(Git(root), referenced, now=now)
    return removed


def retry(root: Path, backend: QueueBackend, entries: list[Entry],
          now: float | None = None) -> list[Entry]:
    """Queue failed or cancelled entries again, each under a fresh name and run id."""

    now = time.time() if now is None else now
    git = Git(root)
    retried = []
    for entry in entries:
        if entry.state not in (FAILED, CANCELLED):
            raise QueueError(f"entry {entry.id} is {entry.state}; only failed or cancelled "
                             "entries can be retried")
        reserved = taken_names(git, entry.baseline) | backend.reserved_names(entry.baseline)
        stem = entry.name.rsplit("-r", 1)[0] if entry.name.rsplit("-r", 1)[-1].isdigit() \
            else entry.name
        counter = 2
        while f"{stem}-r{counter}" in reserved:
            counter += 1
        retried.append(backend.retry(entry.id, name=f"{stem}-r{counter}",
                                     run_id=new_run_id(now), now=now))
    return retried


@struct(frozen=True)
class StatusRow:
    """One line of `tether queue status`."""

    entry: Entry
    host: str | None
    elapsed: float | None
    since_output: float | None
    blocked: str | None = None  # why no live worker can take this waiting entry


def blocked_reason(entry: Entry, workers: Sequence[WorkerInfo]) -> str | None:
    """Why no live worker can take `entry` (None when one can, or it is not waiting)."""
    if entry.state not in WAITING:
        return None
    serving = [w for w in workers if entry.queue in w.queues]
    if any(can_run(entry.requires, w.tags) for w in serving):
        return None
    needs = f"needs tags {','.join(entry.requires)}" if entry.requires else "needs no tags"
    if not serving:
        return (f"no live worker serves queue {entry.queue!r} ({needs}); it waits for one "
                f"(tether worker --queue {entry.queue}"
                + (f" --tags {','.join(entry.requires)})" if entry.requires else ")"))
    seen = "; ".join(f"{w.id} has {','.join(w.tags) or 'no tags'}" for w in serving)
    missing = sorted(set(entry.requires) - {t for w in serving for t in w.tags})
    return (f"no live worker can take it: {needs}" +
            (f" (no worker has {','.join(missing)})" if missing else "") + f"; {seen}")


def status(root: Path, backend: QueueBackend, now: float | None = None, *,
           requeue: bool = True) -> list[StatusRow]:
    """Every entry with host, elapsed time, silence, and why a waiting one no live worker
    can take waits (requeues expired leases first unless `requeue` is False: a read-only
    look, as the viewer's `--read-only` takes, writes nothing)."""
    now = time.time() if now is None else now
    if requeue:
        backend.requeue_expired(now)
    workers = backend.live_workers(now)
    rows = []
    for entry in backend.entries():
        host = entry.worker.rsplit(":", 1)[0] if entry.worker else None
        elapsed = since = None
        if entry.started_at is not None:
            elapsed = (entry.ended_at if entry.state != RUNNING and entry.ended_at else now) \
                - entry.started_at
        if entry.state == RUNNING:
            chunk = backend.read_log(entry.id, entry.attempt, offset=1 << 40)  # only the mtime
            since = now - (chunk.mtime if chunk.mtime is not None else entry.started_at or now)
        rows.append(StatusRow(entry, host, elapsed, since, blocked_reason(entry, workers)))
    return rows

