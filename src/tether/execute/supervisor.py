"""Run one shell command under supervision: live log tee, timeouts, clean kills."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, BinaryIO, Literal

from tether.errors import TetherError
from tether.execute.procgroup import KILL_WAIT, GroupTerminator, group_alive, signal_group
from tether.structs import struct

Status = Literal["success", "failed", "timeout", "stalled", "interrupted"]
EventKind = Literal[
    "started", "expected_exceeded", "stalled", "timeout", "terminating", "killed", "exited"
]

# Longest single wait, so `stop` and a child whose pipes are held elsewhere are noticed.
POLL_INTERVAL = 0.1
READ_SIZE = 65536
# Reads per pipe in a final drain; bounds the drain if something keeps writing.
DRAIN_READS = 16


@struct(frozen=True)
class Limits:
    """Time limits for one supervised command (seconds; None means no limit)."""

    timeout: float | None = None  # total wall seconds
    stall_timeout: float | None = None  # seconds without any output byte
    expected: float | None = None  # reminder after this many seconds; never kills
    grace: float = 5.0  # SIGTERM -> wait grace -> SIGKILL


@struct(frozen=True)
class SupervisorEvent:
    """Something the supervisor noticed or did, reported through `on_event`."""

    kind: EventKind
    at: float  # wall-clock epoch seconds
    detail: str


@struct(frozen=True)
class ProcessOutcome:
    """How a supervised command ended."""

    status: Status
    exit_code: int | None  # 128+signum for death by signal; None if it never started
    signal: int | None
    started_at: float  # epoch seconds
    ended_at: float
    duration: float  # monotonic seconds
    output_bytes: int
    last_output_at: float | None  # epoch


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Supervision:
    """The state of one running command, from start to outcome."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        command: str,
        *,
        log: IO[bytes],
        echo: BinaryIO | None,
        limits: Limits,
        on_event: Callable[[SupervisorEvent], None] | None,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        stop: threading.Event | None,
        started_at: float,
        started_mono: float,
    ) -> None:
        self.proc = proc
        self.command = command
        self.pgid = proc.pid  # start_new_session makes the child its group leader
        self.log = log
        self.echo = echo
        self.limits = limits
        self.on_event = on_event
        self.monotonic = monotonic
        self.wall = wall
        self.stop = stop
        self.started_at = started_at
        self.started_mono = started_mono
        self.output_bytes = 0
        self.last_output_mono = started_mono
        self.last_output_at: float | None = None
        self.log_at_line_start = True
        self.reason: Status | None = None
        self.reason_detail = ""
        self.expected_sent = False
        self.exit_reported = False
        self.terminator: GroupTerminator | None = None
        self.hurry = False  # a second Ctrl-C: skip the rest of the grace period
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

    # -- reporting -------------------------------------------------------

    def emit(self, kind: EventKind, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(SupervisorEvent(kind=kind, at=self.wall(), detail=detail))

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

    # -- reading ---------------------------------------------------------

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

    # -- watching --------------------------------------------------------

    def _set_reason(self, status: Status, detail: str) -> None:
        self.reason = status
        self.reason_detail = detail

    def watch(self) -> None:
        """Tee output until the child exits or a limit, `stop` or Ctrl-C ends the run."""
        limits = self.limits
        while self.proc.poll() is None:
            now = self.monotonic()
            elapsed = now - self.started_mono
            silent = now - self.last_output_mono
            if self.stop is not None and self.stop.is_set():
                self._set_reason("interrupted", "stop requested")
                return
            if limits.timeout is not None and elapsed >= limits.timeout:
                self._set_reason("timeout", f"running for {elapsed:.1f}s (timeout)")
                self.emit("timeout", f"running for {elapsed:.1f}s, timeout {limits.timeout:g}s")
                return
            if limits.stall_timeout is not None and silent >= limits.stall_timeout:
                self._set_reason("stalled", f"no output for {silent:.1f}s (stall_timeout)")
                limit = limits.stall_timeout
                self.emit("stalled", f"no output for {silent:.1f}s, stall_timeout {limit:g}s")
                return
            expected = limits.expected
            if expected is not None and not self.expected_sent and elapsed >= expected:
                self.expected_sent = True
                detail = f"still running after {elapsed:.1f}s, expected {expected:g}s"
                self.emit("expected_exceeded", detail)
            wait = POLL_INTERVAL
            if limits.timeout is not None:
                wait = min(wait, limits.timeout - elapsed)
            if limits.stall_timeout is not None:
                wait = min(wait, limits.stall_timeout - silent)
            if limits.expected is not None and not self.expected_sent:
                wait = min(wait, limits.expected - elapsed)
            self.pump(wait)

    # -- ending ----------------------------------------------------------

    def _reap(self) -> None:
        self.proc.poll()

    def _on_kill(self) -> None:
        text = f"SIGKILL to process group {self.pgid} after {self.limits.grace:g}s grace"
        self.note(text)
        self.emit("killed", text)

    def terminate(self, why: str) -> None:
        """Kill the process group (resumable after a KeyboardInterrupt)."""
        if self.terminator is None:
            self.note(f"{why}: terminating process group")
            self.emit("terminating", f"SIGTERM to process group {self.pgid}: {why}")
            self.terminator = GroupTerminator(
                pgid=self.pgid,
                grace=self.limits.grace,
                monotonic=self.monotonic,
                pause=self.pump,
                reap=self._reap,
                on_kill=self._on_kill,
                hurry=self.hurry,
            )
        self.terminator.run()
        if self.terminator.gave_up:
            self.note(f"process group {self.pgid} still alive after SIGKILL")

    def finish(self) -> ProcessOutcome:
        """Kill what must die, collect the last output and build the outcome."""
        if self.reason is not None:
            self.terminate(self.reason_detail)
        else:
            self.drain()
            self._reap()
            if self.terminator is not None or group_alive(self.pgid):
                self.terminate("command exited leaving processes in its group")
        self.drain()
        self.close()
        code = self.proc.returncode
        if code is None:
            try:
                code = self.proc.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                code = None
        signum = -code if code is not None and code < 0 else None
        exit_code = 128 + signum if signum is not None else code
        status: Status = self.reason or ("success" if code == 0 else "failed")
        if not self.exit_reported:
            self.exit_reported = True
            how = f"killed by {_signal_name(signum)}" if signum else f"exit code {exit_code}"
            self.emit("exited", f"{how}; status {status}")
        return ProcessOutcome(
            status=status,
            exit_code=exit_code,
            signal=signum,
            started_at=self.started_at,
            ended_at=self.wall(),
            duration=self.monotonic() - self.started_mono,
            output_bytes=self.output_bytes,
            last_output_at=self.last_output_at,
        )

    def complete(self) -> ProcessOutcome:
        """Watch, then finish; Ctrl-C at any point yields an "interrupted" outcome."""
        try:
            self.emit("started", f"pid {self.proc.pid}: {self.command}")
            self.watch()
        except KeyboardInterrupt:
            self._set_reason("interrupted", "interrupted (KeyboardInterrupt)")
        while True:
            try:
                return self.finish()
            except KeyboardInterrupt:
                # A second Ctrl-C: finish anyway, skipping what is left of the grace.
                self.hurry = True
                if self.terminator is not None:
                    self.terminator.hurry = True

    def abort(self) -> None:
        """Kill the group at once and release everything (used when a callback raised)."""
        signal_group(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=KILL_WAIT)
        deadline = time.monotonic() + KILL_WAIT
        while group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.close()


def _open_log(log_path: Path) -> IO[bytes]:
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(log_path, "ab", buffering=0)
    except OSError as exc:
        raise TetherError(
            f"cannot open log file {log_path}: {exc.strerror}",
            hint="check that the directory is writable",
        ) from exc


def supervise(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    limits: Limits | None = None,
    echo: BinaryIO | None = None,
    on_event: Callable[[SupervisorEvent], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
) -> ProcessOutcome:
    """Run `command` with `/bin/sh -c` in its own process group and supervise it.

    Output (stdout and stderr, in arrival order) is appended to `log_path` and
    written to `echo` as it arrives. Limits, `stop` and Ctrl-C end the run by
    killing the whole group; leftover group members are killed after a normal exit.
    """
    log = _open_log(log_path)
    try:
        started_at = wall()
        started_mono = monotonic()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            detail = f"cannot start command in {cwd}: {exc.strerror or exc}"
            log.write(f"[tether] {detail}\n".encode())
            if on_event is not None:
                on_event(SupervisorEvent(kind="exited", at=wall(), detail=detail))
            return ProcessOutcome(
                status="failed",
                exit_code=None,
                signal=None,
                started_at=started_at,
                ended_at=wall(),
                duration=monotonic() - started_mono,
                output_bytes=0,
                last_output_at=None,
            )
        run = _Supervision(
            proc,
            command,
            log=log,
            echo=echo,
            limits=limits or Limits(),
            on_event=on_event,
            monotonic=monotonic,
            wall=wall,
            stop=stop,
            started_at=started_at,
            started_mono=started_mono,
        )
        try:
            return run.complete()
        except BaseException:
            run.abort()
            raise
    finally:
        log.close()
