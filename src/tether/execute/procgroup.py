"""Signalling, liveness and termination of a stage's process group."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tether.structs import field, struct

PROC = Path("/proc")

# How long to wait for the group to vanish after SIGKILL before giving up on it.
KILL_WAIT = 5.0


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to every process in group `pgid`; False if the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The group id now belongs to processes we do not own: ours are gone.
        return False
    return True


def _live_member_on_proc(pgid: int) -> bool | None:
    """Whether /proc shows a non-zombie member of `pgid`; None without a usable /proc."""
    try:
        entries = os.listdir(PROC)
    except OSError:
        return None
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = (PROC / name / "stat").read_bytes()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 3:
            continue
        state, group = fields[0], fields[2]
        if group == str(pgid).encode() and state not in (b"Z", b"X"):
            return True
    return False


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies count as dead).

    Orphaned zombies are ignored because an init that never reaps (common in
    containers) would otherwise keep a dead group "alive" forever.
    """
    if not signal_group(pgid, 0):
        return False
    on_proc = _live_member_on_proc(pgid)
    return True if on_proc is None else on_proc


@struct
class GroupTerminator:
    """SIGTERM a process group, wait `grace` seconds, then SIGKILL what is left.

    `run` may be called again after being interrupted (KeyboardInterrupt): it
    resumes where it stopped. `hurry` skips the rest of the grace period.
    """

    pgid: int
    grace: float
    monotonic: Callable[[], float]
    pause: Callable[[float], None]  # waits up to the given seconds (and reads output)
    reap: Callable[[], None]  # reaps the direct child if it has exited
    on_kill: Callable[[], None]  # called once, just before SIGKILL is sent
    term_sent: bool = False
    kill_sent: bool = False
    hurry: bool = False
    gave_up: bool = False
    _term_deadline: float = field(default=0.0, repr=False)
    _kill_deadline: float = field(default=0.0, repr=False)

    def _alive(self) -> bool:
        self.reap()
        return group_alive(self.pgid)

    def run(self) -> None:
        """Terminate the group; returns once it is dead or SIGKILL did not help."""
        while True:
            try:
                if self._step():
                    return
            except KeyboardInterrupt:
                self.hurry = True

    def _step(self) -> bool:
        """One round of the sequence; True when finished."""
        if not self.term_sent:
            self._term_deadline = self.monotonic() + self.grace
            self.term_sent = True
            signal_group(self.pgid, signal.SIGTERM)
            # Stopped processes only act on SIGTERM once continued.
            signal_group(self.pgid, signal.SIGCONT)
        if not self._alive():
            return True
        now = self.monotonic()
        if not self.kill_sent and (self.hurry or now >= self._term_deadline):
            self.on_kill()
            self._kill_deadline = now + KILL_WAIT
            self.kill_sent = True
            signal_group(self.pgid, signal.SIGKILL)
            return not self._alive()
        if self.kill_sent:
            if now >= self._kill_deadline:
                self.gave_up = True
                return True
            self.pause(min(0.05, self._kill_deadline - now))
        else:
            self.pause(min(0.05, self._term_deadline - now))
        return False
