"""Run one shell command under supervision: live log tee, timeouts, clean kills."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Literal

from tether.errors import TetherError
from tether.execute.procgroup import KILL_WAIT, GroupTerminator, group_alive, signal_group
from tether.execute.tee import Tee
from tether.status import FAILED, INTERRUPTED, STALLED, SUCCESS, TIMEOUT
from tether.structs import struct

if TYPE_CHECKING:
    from tether.status import Outcome as Status

EventKind = Literal[
    "started", "expected_exceeded", "stalled", "timeout", "terminating", "killed", "exited"
]

# Longest single wait, so `stop` and a child whose pipes are held elsewhere are noticed.
POLL_INTERVAL = 0.1


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
        self.limits = limits
        self.on_event = on_event
        self.monotonic = monotonic
        self.wall = wall
        self.stop = stop
        self.started_at = started_at
        self.started_mono = started_mono
        self.reason: Status | None = None
        self.reason_detail = ""
        self.expected_sent = False
        self.exit_reported = False
        self.terminator: GroupTerminator | None = None
        self.hurry = False  # a second Ctrl-C: skip the rest of the grace period
        self.tee = Tee(proc, log=log, echo=echo, monotonic=monotonic, wall=wall,
                       started_mono=started_mono)
        self.note, self.pump = self.tee.note, self.tee.pump

    def emit(self, kind: EventKind, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(SupervisorEvent(kind=kind, at=self.wall(), detail=detail))

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
            silent = now - self.tee.last_output_mono
            if self.stop is not None and self.stop.is_set():
                self._set_reason(INTERRUPTED, "stop requested")
                return
            if limits.timeout is not None and elapsed >= limits.timeout:
                self._set_reason(TIMEOUT, f"running for {elapsed:.1f}s (timeout)")
                self.emit("timeout", f"running for {elapsed:.1f}s, timeout {limits.timeout:g}s")
                return
            if limits.stall_timeout is not None and silent >= limits.stall_timeout:
                self._set_reason(STALLED, f"no output for {silent:.1f}s (stall_timeout)")
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
            self.tee.drain()
            self._reap()
            if self.terminator is not None or group_alive(self.pgid):
                self.terminate("command exited leaving processes in its group")
        self.tee.drain()
        self.tee.close()
        code = self.proc.returncode
        if code is None:
            try:
                code = self.proc.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                code = None
        signum = -code if code is not None and code < 0 else None
        exit_code = 128 + signum if signum is not None else code
        status: Status = self.reason or (SUCCESS if code == 0 else FAILED)
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
            output_bytes=self.tee.output_bytes,
            last_output_at=self.tee.last_output_at,
        )

    def complete(self) -> ProcessOutcome:
        """Watch, then finish; Ctrl-C at any point yields an "interrupted" outcome."""
        try:
            self.emit("started", f"pid {self.proc.pid}: {self.command}")
            self.watch()
        except KeyboardInterrupt:
            self._set_reason(INTERRUPTED, "interrupted (KeyboardInterrupt)")
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
        self.tee.close()


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
    keep_fds: tuple[int, ...] = (),
) -> ProcessOutcome:
    """Run `command` with `/bin/sh -c` in its own process group and supervise it.

    `keep_fds` stay open in the command (the in-place run lock: held by a stage that
    outlives a killed tether, so no other run starts in the work tree beside it).

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
                pass_fds=keep_fds,
            )
        except OSError as exc:
            detail = f"cannot start command in {cwd}: {exc.strerror or exc}"
            log.write(f"[tether] {detail}\n".encode())
            if on_event is not None:
                on_event(SupervisorEvent(kind="exited", at=wall(), detail=detail))
            return ProcessOutcome(
                status=FAILED,
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
