"""A small progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Counts work done out of `total`; redraws at most ten times a second.

    Thread-safe: parallel uploads call `advance` from worker threads. With
    `unit="bytes"` amounts are shown as sizes. Silent unless `stream` is a TTY.
    """

    def __init__(
        self, label: str, total: int, *, unit: str = "items", stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._last_draw = 0.0

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self.done += amount
            now = time.monotonic()
            if self._enabled and (now - self._last_draw > 0.1 or self.done >= self.total):
                self._last_draw = now
                self._draw()

    def _fmt(self, n: int) -> str:
        return _human(n) if self.unit == "bytes" else str(n)

    def _draw(self) -> None:
        width = 30
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "█" * int(frac * width) + "·" * (width - int(frac * width))
        self._stream.write(
            f"\r{self.label} {bar} {self._fmt(self.done)}/{self._fmt(self.total)}\x1b[K"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._last_draw:
            with self._lock:
                self._draw()
                self._stream.write("\n")
                self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
