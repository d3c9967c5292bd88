"""Runs in progress: which one holds the work tree, and its logs and steps as they grow.

An in-place run says who it is in `.tether/run.lock` (run id, name, pid) and writes its
stage logs and step metrics under `.tether/runs/<id>/` until `record.json` appears
there. The viewer reads that file rather than probing the lock: taking even a shared
`flock` for a moment could make a starting `tether run` fail as busy.
"""

from __future__ import annotations

import json
import os
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
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
