"""Runs in progress: in place, `--temp` and queued; their logs and steps as they grow.

An in-place run says who it is in `.tether/run.lock` (run id, name, pid); every run also
writes `run.json` (name, run id, pid, start) into its folder, `.tether/runs/<id>/` of
the repository (in place, `--temp`) or of its queue attempt's folder (queued: the
embedded worker's and Celery's on this machine), and its stage logs and step metrics
there until `record.json` appears. The viewer reads those files rather than probing the
lock: taking even a shared `flock` for a moment could make a starting `tether run` fail
as busy. Queued runs are found through the queue's running entries (read only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether.execute.runlock import RUN_LOCK
from tether.layout import RUN_INFO, runs_dir, state_dir


class RunningRun:
    """A run still in progress, and the folder its files grow in."""

    __slots__ = ("attempt", "directory", "name", "pid", "run_id", "started", "where")

    def __init__(self, name: str, run_id: str, started: float | None, directory: Path,
                 pid: int | None = None, where: str = "in-place",
                 attempt: QueuedAttempt | None = None) -> None:
        self.name = name
        self.run_id = run_id
        self.started = started
        self.directory = directory
        self.pid = pid
        self.where = where  # in-place | temp | queued
        self.attempt = attempt  # a queued attempt whose folder is not here: its output only

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "run_id": self.run_id, "started": self.started,
                "where": self.where}

    def finished(self) -> bool:
        """Recorded, or its process is gone (for an attempt elsewhere: no longer running)."""
        if self.attempt is not None:
            return bool(self.attempt.entry().state != "running")
        return (self.directory / "record.json").exists() or not _alive(self.pid)

    def new_lines(self, offsets: dict[str, int], *, final: bool = True
                  ) -> list[tuple[str, list[str]]]:
        """(stage, new lines) since `offsets` (an attempt elsewhere: its whole output)."""
        if self.attempt is not None:
            return self.attempt.new_lines(offsets, final=final)
        return read_new_lines(self.directory, offsets, final=final)

    def new_steps(self, offsets: dict[str, int], *, final: bool = True
                  ) -> dict[str, list[list[Any]]]:
        """Metric → new points since `offsets` (none from an attempt elsewhere)."""
        if self.attempt is not None:
            return {}
        return read_new_steps(self.directory, offsets, final=final)

    def final_status(self) -> str:
        """The status recorded at the end (interrupted when there is none)."""
        if self.attempt is not None:
            entry = self.attempt.entry()
            return entry.status or ("interrupted" if entry.state != "done" else "success")
        try:
            record = json.loads((self.directory / "record.json").read_text())
        except (OSError, ValueError):
            return "interrupted"
        status = record.get("status") if isinstance(record, dict) else None
        return status if isinstance(status, str) else "interrupted"


class QueuedAttempt:
    """A queue attempt run on another machine: its combined output through the queue
    (`read_log`: Celery's store, or `output.log` when the folders are shared)."""

    OUTPUT = "output"  # the stage name its lines are sent under

    def __init__(self, root: Path, entry_id: str, number: int) -> None:
        self.root = root
        self.entry_id = entry_id
        self.number = number

    def _backend(self) -> Any:
        from tether.queue.client import open_queue

        return open_queue(self.root)

    def entry(self) -> Any:
        backend = self._backend()
        try:
            entry = backend.get(self.entry_id)
        finally:
            backend.close()
        if entry is None or entry.attempt != self.number:
            return _Gone()
        return entry

    def new_lines(self, offsets: dict[str, int], *, final: bool
                  ) -> list[tuple[str, list[str]]]:
        backend = self._backend()
        try:
            chunk = backend.read_log(self.entry_id, self.number, offsets.get(self.OUTPUT, 0))
        finally:
            backend.close()
        data = chunk.data if final else chunk.data[: chunk.data.rfind(b"\n") + 1]
        offsets[self.OUTPUT] = offsets.get(self.OUTPUT, 0) + len(data)
        return [(self.OUTPUT, data.decode(errors="replace").splitlines())] if data else []


class _Gone:
    """An entry removed or retried meanwhile."""

    state = "gone"
    status = None


def _alive(pid: Any) -> bool:
    from tether.gitstore.worktrees import pid_alive

    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _safe_id(run_id: Any) -> bool:
    return isinstance(run_id, str) and bool(run_id) and "/" not in run_id \
        and not run_id.startswith(".")


def _run_in(directory: Path, info: dict[str, Any], where: str) -> RunningRun | None:
    """The run `info` describes, when it runs still in `directory`."""
    name, pid, started = info.get("name"), info.get("pid"), info.get("started")
    if not (isinstance(name, str) and _alive(pid)):
        return None
    if not directory.is_dir() or (directory / "record.json").exists():
        return None
    return RunningRun(name, info["run_id"], started if isinstance(started, int | float)
                      else None, directory, pid, where)


def running_run(root: Path) -> RunningRun | None:
    """The in-place run in progress in the work tree at `root`, once it has a name."""
    info = _read_info(state_dir(root) / RUN_LOCK)
    if not _safe_id(info.get("run_id")):
        return None
    return _run_in(runs_dir(root) / info["run_id"], info, "in-place")


def running_runs(root: Path, *, queued: bool = True) -> list[RunningRun]:
    """Every run in progress: in place, `--temp`, and (`queued`) the queue's on this
    machine; oldest first."""
    found: dict[str, RunningRun] = {}
    here = running_run(root)
    if here is not None:
        found[here.run_id] = here
    folder = runs_dir(root)
    if folder.is_dir():
        for path in folder.iterdir():
            info = _read_info(path / RUN_INFO)
            if path.name not in found and info.get("run_id") == path.name:
                run = _run_in(path, info, "temp" if info.get("temp") else "in-place")
                if run is not None:
                    found[run.run_id] = run
    if queued:
        for run in queued_runs(root):
            found.setdefault(run.run_id, run)
    return sorted(found.values(), key=lambda r: (r.started or 0.0, r.run_id))


def queued_runs(root: Path) -> list[RunningRun]:
    """The queue's running attempts whose folder is on this machine (read only: no queue
    is made where there is none)."""
    from tether.layout import queue_db
    from tether.queue.client import backend_name, open_queue

    if backend_name(root) == "embedded" and not queue_db(root).exists():
        return []
    backend = open_queue(root)
    try:
        found = []
        for entry in backend.entries(states=["running"]):
            if not _safe_id(entry.run_id):
                continue
            attempt = backend.attempt_dir(entry.id, entry.attempt)
            directory = runs_dir(attempt) / entry.run_id
            info = _read_info(directory / RUN_INFO)
            run = _run_in(directory, info, "queued")
            if run is None and not info and _elsewhere(entry.worker):  # another machine
                run = RunningRun(entry.name, entry.run_id, entry.started_at, directory,
                                 where="queued", attempt=QueuedAttempt(
                                     root, entry.id, entry.attempt))
            if run is not None:
                found.append(run)
        return found
    finally:
        backend.close()


def _elsewhere(worker: str | None) -> bool:
    """Whether the worker `host:pid` runs on another machine (its files are not here)."""
    import socket

    return bool(worker) and str(worker).rsplit(":", 1)[0] != socket.gethostname()


def find_running(root: Path, name: str) -> RunningRun | None:
    """The run in progress called `name` (the newest, if several are)."""
    named = [run for run in running_runs(root) if run.name == name]
    return named[-1] if named else None


# -- the files of a run, read a little more each time ---------------------------------


def _read_from(path: Path, offset: int, *, final: bool) -> tuple[bytes, int]:
    """The complete lines of `path` after `offset` (everything, when `final`)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return b"", offset
    if not final:
        chunk = chunk[: chunk.rfind(b"\n") + 1]
    return chunk, offset + len(chunk)


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.name.endswith(suffix) and p.is_file()),
                  key=lambda p: (p.stat().st_mtime_ns, p.name))


def read_new_lines(
    directory: Path, offsets: dict[str, int], *, final: bool = True
) -> list[tuple[str, list[str]]]:
    """(stage, new log lines) of a run's stage logs since `offsets` (updated in place)."""
    found = []
    for path in _files(directory / "logs", ".log"):
        stage = path.name[: -len(".log")]
        chunk, offsets[stage] = _read_from(path, offsets.get(stage, 0), final=final)
        if chunk:
            found.append((stage, chunk.decode(errors="replace").splitlines()))
    return found


def read_new_steps(
    directory: Path, offsets: dict[str, int], *, final: bool = True
) -> dict[str, list[list[Any]]]:
    """Metric → new [step, value, wall time] points of a run's step files since `offsets`."""
    points: dict[str, list[list[Any]]] = {}
    for path in _files(directory / "steps", ".jsonl"):
        chunk, offsets[path.name] = _read_from(path, offsets.get(path.name, 0), final=final)
        for line in chunk.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a torn or foreign line: the record's reader reports it
            if not isinstance(row, dict):
                continue
            for key, value in row.items():
                if key not in ("step", "ts"):
                    points.setdefault(key, []).append([row.get("step"), value, row.get("ts")])
    return points
