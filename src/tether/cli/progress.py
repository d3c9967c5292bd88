"""The one progress renderer: a bar on stderr, drawn only when stderr is a terminal.

Library code reports progress through a callback, `progress(done, total)` (a total of
0: not known yet); only the CLI draws. `ProgressBar` is such a callback.
"""

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


class ProgressBar:
    """`progress(done, total)` drawn as `label ███···· done/total`, at most ten times a
    second and once at the end; with `unit="bytes"` amounts are shown as sizes.

    Thread-safe. Silent unless `stream` is a TTY, and while `total` is at most
    `threshold` (a short job needs no bar). `close()` ends the line (or, with `erase`,
    removes it).
    """

    def __init__(
        self, label: str, *, unit: str = "items", stream: TextIO | None = None,
        enabled: bool | None = None, threshold: int = 0, erase: bool = False,
    ) -> None:
        self.label = label
        self.unit = unit
        self.threshold = threshold
        self.erase = erase
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled or (total and total <= self.threshold):
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last_draw > 0.1 or (total and done >= total):
                self._last_draw = now
                self._draw(done, total)

    def _fmt(self, n: int) -> str:
        return _human(n) if self.unit == "bytes" else str(n)

    def _draw(self, done: int, total: int) -> None:
        width = 30
        frac = min(1.0, done / total) if total else 1.0
        bar = "█" * int(frac * width) + "·" * (width - int(frac * width))
        shown = f"{self._fmt(done)}/{self._fmt(total)}" if total else self._fmt(done)
        self._stream.write(f"\r{self.label} {bar} {shown}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self._stream.write("\r\x1b[K" if self.erase else "\n")
                self._stream.flush()
                self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
