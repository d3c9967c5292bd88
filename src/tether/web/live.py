"""Runs in progress: which one holds the work tree, and its logs and steps as they grow.

An in-place run says who it is in `.tether/run.lock` (run id, name, pid) and writes its
stage logs and step metrics under `.tether/runs/<id>/` until `record.json` appears
there. The viewer reads that file rather than probing the lock: taking even a shared
`flock` for a moment could make a starting `tether run` fail as busy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether.execute.runlock import RUN_LOCK
from tether.layout import runs_dir, state_dir


class RunningRun:
    """An in-place run still in progress."""

    __slots__ = ("directory", "name", "run_id", "started")

    def __init__(self, name: str, run_id: str, started: float | None, directory: Path) -> None:
        self.name = name
        self.run_id = run_id
        self.started = started
        self.directory = directory

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "run_id": self.run_id, "started": self.started}


def _alive(pid: Any) -> bool:
    from tether.gitstore.worktrees import pid_alive

    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


def running_run(root: Path) -> RunningRun | None:
    """The in-place run in progress in the work tree at `root`, once it has a name."""
    try:
        info = json.loads((state_dir(root) / RUN_LOCK).read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    name, run_id = info.get("name"), info.get("run_id")
    if not (isinstance(name, str) and isinstance(run_id, str) and _alive(info.get("pid"))):
        return None
    if "/" in run_id or run_id.startswith("."):
        return None
    directory = runs_dir(root) / run_id
    if not directory.is_dir() or (directory / "record.json").exists():
        return None
    started = info.get("started")
    return RunningRun(name, run_id, started if isinstance(started, int | float) else None,
                      directory)


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


def step_names(directory: Path) -> list[str]:
    """The step metrics a run has logged so far."""
    return sorted(read_new_steps(directory, {}))
