"""A supervised command's output: read from its pipes as it arrives, appended to the
stage log and echoed to the terminal; the child's exit wakes the reader too (pidfd)."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from typing import IO, BinaryIO

READ_SIZE = 65536
# Reads per pipe in a final drain; bounds the drain if something keeps writing.
DRAIN_READS = 16


class Tee:
    """The pipes of one child, teed to `log` and `echo`; `monotonic` and `wall` time
    the last output."""

    def __init__(
        self, proc: subprocess.Popen[bytes], *, log: IO[bytes], echo: BinaryIO | None,
        monotonic: Callable[[], float], wall: Callable[[], float], started_mono: float,
    ) -> None:
        self.log = log
        self.echo = echo
        self.monotonic = monotonic
        self.wall = wall
        self.output_bytes = 0
        self.last_output_mono = started_mono
        self.last_output_at: float | None = None
        self.log_at_line_start = True
        self.selector = selectors.DefaultSelector()
        self.closed = False
        self.pidfd: int | None = None
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self.selector.register(pipe, selectors.EVENT_READ)
        try:
            self.pidfd = os.pidfd_open(proc.pid)
            self.selector.register(self.pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            self.pidfd = None

    def _write_log(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.log.write(view)
            view = view[written or len(view) :]
        self.log.flush()
        self.log_at_line_start = data.endswith(b"\n")

    def note(self, text: str) -> None:
        """Append a `[tether]` trailer line to the log."""
        prefix = b"" if self.log_at_line_start else b"\n"
        self._write_log(prefix + f"[tether] {text}\n".encode())

    def _output(self, chunk: bytes) -> None:
        self.output_bytes += len(chunk)
        self.last_output_mono = self.monotonic()
        self.last_output_at = self.wall()
        self._write_log(chunk)
        if self.echo is not None:
            try:
                self.echo.write(chunk)
                self.echo.flush()
            except (OSError, ValueError):
                self.echo = None  # a closed terminal must not stop the stage

    def _forget(self, fileobj: IO[bytes] | int) -> None:
        self.selector.unregister(fileobj)
        if isinstance(fileobj, int):
            os.close(fileobj)
            self.pidfd = None
        else:
            fileobj.close()

    def _read(self, pipe: IO[bytes]) -> bool:
        """Read one chunk from `pipe`; False when nothing more is available now."""
        try:
            chunk = os.read(pipe.fileno(), READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self._forget(pipe)
            return False
        self._output(chunk)
        return True

    def pump(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for output or the child's exit; tee what arrives."""
        if self.closed or not self.selector.get_map():
            time.sleep(max(timeout, 0.0))
            return
        for key, _ in self.selector.select(max(timeout, 0.0)):
            if isinstance(key.fileobj, int):
                self._forget(key.fileobj)  # the pidfd: the child exited; stop waking on it
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]

    def drain(self) -> None:
        """Read what the pipes hold right now, without waiting."""
        if self.closed:
            return
        for key in list(self.selector.get_map().values()):
            if isinstance(key.fileobj, int):
                continue
            for _ in range(DRAIN_READS):
                if not self._read(key.fileobj):  # type: ignore[arg-type]
                    break

    def close(self) -> None:
        """Close the pipes and the selector; safe to call again."""
        if self.closed:
            return
        for key in list(self.selector.get_map().values()):
            self._forget(key.fileobj)  # type: ignore[arg-type]
        self.selector.close()
        self.closed = True
