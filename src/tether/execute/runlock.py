"""One in-place run per work tree at a time.

An in-place run rewrites the params files and the outputs of its work tree, so
two of them at once would record each other's params. The run holds an
exclusive `flock` on `.tether/run.lock` for its whole life, and so do its stage
processes (they inherit the descriptor); the kernel releases it when the last of
them ends, however it ends, so a lock is never stale. The file
says who holds it (run id, name, pid, start) for the message of the one that
waits or gives up. `--temp` and queued runs use worktrees of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tether.errors import BusyError, LocalStateError
from tether.layout import state_dir

RUN_LOCK = "run.lock"


def describe_holder(info: dict[str, Any]) -> str:
    """`<run id/name> (pid N, started T)` from what the holder wrote."""
    who = info.get("name") or info.get("run_id") or "a run still starting"
    if info.get("name") and info.get("run_id"):
        who = f"{info['run_id']}/{info['name']}"
    details = []
    if info.get("pid"):
        details.append(f"pid {info['pid']}")
    if isinstance(info.get("started"), int | float):
        details.append("started " + time.strftime("%Y-%m-%d %H:%M:%S",
                                                  time.localtime(info["started"])))
    return f"{who} ({', '.join(details)})" if details else str(who)


class RunLock:
    """The exclusive lock of in-place runs of the work tree at `root`."""

    def __init__(self, root: Path) -> None:
        self.path = state_dir(root) / RUN_LOCK
        self._handle: IO[str] | None = None
        self.info: dict[str, Any] = {}

    def holder(self) -> str:
        """Who holds the lock, as far as its file says."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        return describe_holder(info if isinstance(info, dict) else {})

    def acquire(self, *, wait: bool, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; BusyError if another run holds it, unless `wait`."""
        try:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise LocalStateError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self.holder()
                if not wait:
                    raise BusyError(
                        f"a run is in progress in this work tree: {holder}",
                        hint="wait for it with `tether run --wait`, or run beside it "
                        "in a worktree of its own with `tether run --temp` or `--queue`",
                    ) from None
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        self.update(pid=os.getpid(), started=time.time())

    def update(self, **info: Any) -> None:
        """Say more about the run holding the lock (its id, then its name)."""
        if self._handle is None:
            return
        self.info.update(info)
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(json.dumps(self.info))
            self._handle.flush()

    def fds(self) -> tuple[int, ...]:
        """The lock's descriptor, for the stage processes to inherit: a flock belongs to
        the open file, so it is held until the last of them closes it. A stage left
        running by a tether that was killed (SIGKILL, the OOM killer) keeps the work tree
        busy until it ends, instead of writing outputs under the next run."""
        return (self._handle.fileno(),) if self._handle is not None else ()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the flock
            self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
