"""The worker's clocks: heartbeat and retry backoff delays, and the tick loop that lets
a caller act periodically inside a worker (the feedback layer fires due schedules)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("tether.queue.worker")

Tick = Callable[[float], object]


def next_heartbeat_delay(delay: float, ok: bool, interval: float, cap: float) -> float:
    """The wait before the next heartbeat round: `interval`, doubled while renewals
    fail, up to `cap` (kept below the lease, so a renewal comes soon after recovery)."""
    if ok:
        return interval
    return min(max(interval, cap), delay * 2)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2·base, 4·base... capped."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


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
                log.warning("worker tick failed (%s: %s); trying again", type(exc).__name__,
                            exc)
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True, name="tether-ticks")
    thread.start()
    return thread
