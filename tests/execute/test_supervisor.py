"""The supervisor against real shell processes."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tether.execute.supervisor import (
    Limits,
    ProcessOutcome,
    SupervisorEvent,
    supervise,
)

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}

# Starts a grandchild that ignores SIGTERM and waits until it has written its pid.
GRANDCHILD = (
    "sh -c 'trap \"\" TERM; echo $$ > gc.pid; exec sleep 1000' & "
    "while [ ! -s gc.pid ]; do sleep 0.02; done; "
)


def running(pid: int) -> bool:
    """Whether `pid` is a live process (zombies left to a non-reaping init count as dead)."""
    stat_path = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            stat = stat_path.read_text()
        except FileNotFoundError:
            return False
        return stat[stat.rfind(")") + 2] not in "ZX"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Clock:
    """Supervised time for `supervise(monotonic=...)`: it moves `step` seconds each time
    it is read, once started, so limits are counted in the supervisor's own reads and
    no test waits for real seconds to pass. `then`, if set, runs at the next read."""

    def __init__(self, step: float = 0.5, *, started: bool = True) -> None:
        self.now = 0.0
        self.step = step
        self.started = started
        self.then: Callable[[], None] | None = None

    def __call__(self) -> float:
        if self.started:
            self.now += self.step
        action, self.then = self.then, None
        if action is not None:
            action()
        return self.now

    def start(self) -> None:
        self.started = True


class When(io.RawIOBase):
    """An `echo` target that calls `action` once the output has shown `marker`."""

    def __init__(self, marker: bytes, action: Callable[[], None]) -> None:
        self.marker = marker
        self.action: Callable[[], None] | None = action
        self.seen = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.seen += bytes(data)
        if self.action is not None and self.marker in self.seen:
            action, self.action = self.action, None
            action()
        return len(data)


class Run:
    """One supervised command in a temp dir, with its events and log."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.log_path = tmp_path / "logs" / "stage.log"
        self.events: list[SupervisorEvent] = []
        self.on: dict[str, Callable[[], None]] = {}  # event kind -> action, once

    def _event(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        action = self.on.pop(event.kind, None)
        if action is not None:
            action()

    def __call__(self, command: str, limits: Limits | None = None, **kwargs: Any) -> ProcessOutcome:
        kwargs.setdefault("env", ENV)
        return supervise(
            command,
            cwd=self.cwd,
            log_path=self.log_path,
            limits=limits or Limits(),
            on_event=self._event,
            **kwargs,
        )

    @property
    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    @property
    def log(self) -> bytes:
        return self.log_path.read_bytes()

    def grandchild_pid(self) -> int:
        return int((self.cwd / "gc.pid").read_text())


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def send_sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


needs_default_sigint = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="SIGINT does not raise KeyboardInterrupt in this process",
)


@pytest.mark.parametrize(
    ("command", "status", "code"), [("exit 0", "success", 0), ("exit 3", "failed", 3)]
)
def test_exit_code_gives_status(run: Run, command: str, status: str, code: int) -> None:
    outcome = run(command)
    assert (outcome.status, outcome.exit_code, outcome.signal) == (status, code, None)
    assert outcome.ended_at >= outcome.started_at
    assert outcome.output_bytes == 0 and outcome.last_output_at is None
    assert run.kinds == ["started", "exited"]


def test_log_is_appended_not_replaced(run: Run) -> None:
    run.log_path.parent.mkdir(parents=True)
    run.log_path.write_bytes(b"earlier\n")
    run("echo later")
    assert run.log == b"earlier\nlater\n"


def test_env_is_exactly_the_given_one(run: Run) -> None:
    outcome = run('echo "$ONLY_THIS:${HOME:-unset}"', env={"ONLY_THIS": "yes"})
    assert outcome.status == "success"
    assert run.log == b"yes:unset\n"


def test_output_is_teed_live_in_arrival_order(run: Run) -> None:
    go = run.cwd / "go"
    seen_in_log_when_echoed: list[bool] = []

    class Terminal(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            if b"ready" in data:
                # The log already holds the chunk, and the command is still waiting on us.
                seen_in_log_when_echoed.append(b"ready" in run.log)
                go.touch()
            return super().write(data)

    terminal = Terminal()
    command = (
        "echo ready; while [ ! -e go ]; do sleep 0.02; done; "
        "printf 'out2\\n'; sleep 0.1; printf 'err\\n' >&2; sleep 0.1; printf 'out3\\n'"
    )
    outcome = run(command, Limits(timeout=10), echo=terminal)
    expected = b"ready\nout2\nerr\nout3\n"
    assert outcome.status == "success"
    assert seen_in_log_when_echoed == [True]
    assert terminal.getvalue() == expected
    assert run.log == expected
    assert outcome.output_bytes == len(expected)
    assert outcome.last_output_at is not None
    assert outcome.started_at <= outcome.last_output_at <= outcome.ended_at


def test_binary_and_partial_utf8_pass_through(run: Run) -> None:
    outcome = run("printf '\\377\\303'; printf '\\251\\n' >&2")
    assert outcome.status == "success"
    assert run.log == b"\xff\xc3\xa9\n"


def test_silence_is_a_stall(run: Run) -> None:
    limits = Limits(stall_timeout=2, grace=1000)
    outcome = run("echo hi; sleep 30", limits, monotonic=Clock())
    assert outcome.status == "stalled"
    assert outcome.duration >= 2
    assert outcome.signal == signal.SIGTERM and outcome.exit_code == 128 + signal.SIGTERM
    assert run.kinds == ["started", "stalled", "terminating", "exited"]
    assert b"[tether] no output for" in run.log and b"(stall_timeout)" in run.log
    assert run.log.startswith(b"hi\n")


def test_steady_output_is_not_a_stall(run: Run) -> None:
    # Each line comes within a few of the supervisor's reads; the whole run takes many
    # more than the stall_timeout.
    command = "i=0; while [ $i -lt 60 ]; do echo $i; i=$((i+1)); sleep 0.01; done"
    outcome = run(command, Limits(stall_timeout=3), monotonic=Clock())
    assert outcome.status == "success"
    assert "stalled" not in run.kinds
    assert outcome.duration > 3


def test_total_timeout(run: Run) -> None:
    outcome = run("printf partial; sleep 30", Limits(timeout=2, grace=1000), monotonic=Clock())
    assert outcome.status == "timeout"
    assert run.kinds == ["started", "timeout", "terminating", "exited"]
    assert outcome.duration >= 2
    # The trailer starts on its own line even though the output did not end one.
    assert run.log.startswith(b"partial\n[tether] running for ")
    assert b"(timeout): terminating process group" in run.log


def test_expected_duration_only_reminds(run: Run) -> None:
    # The command ends only once the reminder came: it cannot finish before it.
    run.on["expected_exceeded"] = lambda: (run.cwd / "go").touch()
    outcome = run("while [ ! -e go ]; do sleep 0.01; done; echo done", Limits(expected=2),
                  monotonic=Clock())
    assert outcome.status == "success"
    assert run.kinds == ["started", "expected_exceeded", "exited"]
    assert run.log == b"done\n"


def test_sigkill_after_grace_when_sigterm_is_ignored(run: Run) -> None:
    clock = Clock(started=False)  # time starts once the trap is set
    outcome = run("trap '' TERM; echo armed; sleep 30", Limits(timeout=1, grace=1),
                  monotonic=clock, echo=When(b"armed", clock.start))
    assert outcome.status == "timeout"
    assert run.kinds == ["started", "timeout", "terminating", "killed", "exited"]
    assert (outcome.exit_code, outcome.signal) == (128 + signal.SIGKILL, signal.SIGKILL)
    assert b"[tether] SIGKILL to process group" in run.log


def test_grandchild_ignoring_sigterm_dies_with_the_stage(run: Run) -> None:
    clock = Clock(started=False)  # time starts once the grandchild runs
    outcome = run(GRANDCHILD + "echo armed; sleep 30", Limits(timeout=1, grace=1),
                  monotonic=clock, echo=When(b"armed", clock.start))
    assert outcome.status == "timeout"
    assert "killed" in run.kinds
    assert not running(run.grandchild_pid())


def test_grandchild_left_behind_after_success_is_killed(run: Run) -> None:
    # The grandchild also holds the stdout pipe open: the supervisor must not wait for EOF.
    outcome = run(GRANDCHILD + "echo parent done; exit 0", Limits(grace=0.3))
    assert (outcome.status, outcome.exit_code) == ("success", 0)
    assert not running(run.grandchild_pid())
    assert run.kinds == ["started", "terminating", "killed", "exited"]
    assert run.log.startswith(b"parent done\n[tether] command exited leaving processes")


def test_stop_event_interrupts(run: Run) -> None:
    stop = threading.Event()
    outcome = run(GRANDCHILD + "echo armed; sleep 30", Limits(grace=1), stop=stop,
                  monotonic=Clock(), echo=When(b"armed", stop.set))
    assert outcome.status == "interrupted"
    assert not running(run.grandchild_pid())
    assert b"[tether] stop requested: terminating process group" in run.log


@needs_default_sigint
def test_ctrl_c_interrupts_and_kills_the_group(run: Run) -> None:
    try:
        outcome = run(GRANDCHILD + "echo armed; sleep 30", Limits(grace=1), monotonic=Clock(),
                      echo=When(b"armed", send_sigint))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped supervise")
    assert outcome.status == "interrupted"
    assert not running(run.grandchild_pid())
    assert b"interrupted (KeyboardInterrupt): terminating process group" in run.log


@needs_default_sigint
def test_second_ctrl_c_during_grace_still_completes_the_kill(run: Run) -> None:
    # A grace far longer than the test: the second Ctrl-C, while the supervisor waits out
    # the grace after SIGTERM, must escalate to SIGKILL, not abandon the group.
    clock = Clock()

    def second_ctrl_c() -> None:  # at the second read: SIGTERM is out, the group lives on
        clock.then = lambda: setattr(clock, "then", send_sigint)

    run.on["terminating"] = second_ctrl_c
    try:
        outcome = run(GRANDCHILD + "trap '' TERM; echo armed; sleep 30", Limits(grace=10**6),
                      monotonic=clock, echo=When(b"armed", send_sigint))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped supervise")
    assert outcome.status == "interrupted"
    assert "killed" in run.kinds
    assert outcome.signal == signal.SIGKILL
    assert not running(run.grandchild_pid())


def test_death_by_signal(run: Run) -> None:
    outcome = run("kill -USR1 $$")
    assert outcome.status == "failed"
    assert (outcome.exit_code, outcome.signal) == (128 + signal.SIGUSR1, signal.SIGUSR1)
    assert "SIGUSR1" in run.events[-1].detail


def test_missing_cwd_is_a_failed_outcome(run: Run, tmp_path: Path) -> None:
    run.cwd = tmp_path / "missing"
    outcome = run("true")
    assert (outcome.status, outcome.exit_code, outcome.signal) == ("failed", None, None)
    assert b"[tether] cannot start command in" in run.log
    assert run.kinds == ["exited"]


def test_injected_clock_drives_the_limits(run: Run) -> None:
    origin = time.monotonic()

    def fast() -> float:  # one real second is a hundred supervised ones
        return origin + (time.monotonic() - origin) * 100

    outcome = run("sleep 30", Limits(timeout=30), monotonic=fast)
    assert outcome.status == "timeout"
    assert outcome.duration >= 30


def test_callback_error_propagates_and_kills_the_group(run: Run) -> None:
    def explode(event: SupervisorEvent) -> None:
        if event.kind == "expected_exceeded":
            raise RuntimeError("callback failed")

    clock = Clock(started=False)  # time starts once the grandchild runs
    with pytest.raises(RuntimeError, match="callback failed"):
        supervise(
            GRANDCHILD + "echo armed; sleep 30",
            cwd=run.cwd,
            env=ENV,
            log_path=run.log_path,
            limits=Limits(expected=1),
            on_event=explode,
            monotonic=clock,
            echo=When(b"armed", clock.start),
        )
    assert not running(run.grandchild_pid())
