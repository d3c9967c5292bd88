"""Pre-started child processes: a run's Python imports are paid before its entry arrives.

Each queue attempt still runs in a fresh process of its own (so it can be
stopped, abandoned or crash alone), but that process is started ahead of time,
imports the runner, and then waits on its stdin for the one job it will run.
This takes Python's start-up and tether's imports off every experiment's path.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path

from tether.gitstore.git import clean_env


class WarmChild:
    """A started `python -m tether.queue.child --warm`, waiting for its job."""

    def __init__(self, python: str, root: Path) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [python, "-P", "-m", "tether.queue.child", "--warm"],  # -P: see worker.py
                cwd=root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=(write_fd,), env=clean_env(),
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.read_fd = read_fd
        self.channel_fd = write_fd  # its number in the child (pass_fds keeps numbers)

    def start(self, job_path: Path, cwd: Path, env: dict[str, str], log: Path) -> None:
        """Hand over the job; the child takes the env, folder and log and runs it."""
        assert self.proc.stdin is not None
        order = {"job": str(job_path), "cwd": str(cwd), "env": env, "log": str(log)}
        self.proc.stdin.write(json.dumps(order).encode() + b"\n")
        self.proc.stdin.close()

    def discard(self) -> None:
        """Let an unused child go: closing its stdin makes it exit."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class WarmPool:
    """Keeps one started child ready per worker slot, replacing each as it is used."""

    def __init__(self, python: str, root: Path, size: int) -> None:
        self.python, self.root, self.size = python, root, size
        self._ready: list[WarmChild] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> WarmChild | None:
        """A ready child if there is one (then another starts in the background)."""
        with self._lock:
            child = self._ready.pop() if self._ready else None
        self.fill_later()
        return child

    def fill_later(self) -> None:
        threading.Thread(target=self._fill, daemon=True).start()

    def _fill(self) -> None:
        with self._lock:
            if self._closed or len(self._ready) >= self.size:
                return
        try:
            child = WarmChild(self.python, self.root)
        except OSError:
            return  # no warm child: the next attempt starts cold
        with self._lock:
            if not self._closed and len(self._ready) < self.size:
                self._ready.append(child)
                return
        child.discard()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, []
        for child in ready:
            child.discard()
