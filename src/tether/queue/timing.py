"""The worker's clocks: the heartbeat delay, and the tick loop that lets a caller act
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


def start_ticks(tick: Tick | None, every: float, clock: Callable[[], float],
                stop: threading.Event) -> threading.Thread | None:
    """Call `tick(clock())` now and every `every` seconds until `stop` is set, in a
    daemon thread (None when there is no tick). A failing tick is logged, never fatal."""
    if tick is None:
        return None

    def loop() -> None:
        while not stop.is_set():
            try:
                tick(clock())
            except Exception as exc:  # the state store away for a moment: next tick
                get_logger("tether.queue.worker").warning(
                    "tick_failed", error=f"{type(exc).__name__}: {exc}", retrying=True)
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True, name="tether-ticks")
    thread.start()
    return thread
