"""The worker's clocks: the heartbeat delay, and the ticker that lets a caller act
periodically inside a worker (the feedback layer fires due schedules). Retry backoff
lives with the attempt's outcome (`outcome.py`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tether.logs import get_logger

Tick = Callable[[float], object]


def next_heartbeat_delay(delay: float, ok: bool, interval: float, cap: float) -> float:
    """The wait before the next heartbeat round: `interval`, doubled while renewals
    fail, up to `cap` (kept below the lease, so a renewal comes soon after recovery)."""
    if ok:
        return interval
    return min(max(interval, cap), delay * 2)


class Ticker:
    """Calls `tick(clock())` now and every `every` seconds, in a daemon thread, until
    stopped; a failing tick is logged, never fatal. No tick is given: nothing to call.

    `settle(idle)` is how a worker that exits when idle decides to: one last tick, then
    `idle()`, with no tick running meanwhile or after, so a tick can never queue an entry
    (a schedule's occurrence) just after the worker found nothing to run."""

    def __init__(self, tick: Tick | None, every: float, clock: Callable[[], float]) -> None:
        self._tick = tick
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._tick is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tether-ticks")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self.tick_now()
            self._stopped.wait(self._every)

    def tick_now(self) -> object:
        """Tick once now (unless stopped); what the tick returned (None if it failed)."""
        with self._lock:
            return self._call()

    def _call(self) -> object:
        if self._tick is None or self._stopped.is_set():
            return None
        try:
            return self._tick(self._clock())
        except Exception as exc:  # the state store away for a moment: next tick
            get_logger("tether.queue.worker").warning(
                "tick_failed", error=f"{type(exc).__name__}: {exc}", retrying=True)
            return None

    def settle(self, idle: Callable[[], bool]) -> bool:
        """Tick one last time, then stop ticking and return True if `idle()` is True."""
        with self._lock:
            self._call()
            if not idle():
                return False
            self._stopped.set()
            return True

    def stop(self, wait: float | None = None) -> None:
        """No more ticks; with `wait`, wait that long at most for a running one to end."""
        self._stopped.set()
        if wait is not None and self._thread is not None:
            self._thread.join(wait)
