"""Measure how many `tether.log` calls per second this machine sustains.

Run: `.venv/bin/python bench/bench_log.py [calls]`. Each call logs a step and
two float metrics into a temporary steps file, as a training loop would.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import tether


def bench(calls: int) -> float:
    """Return calls per second for `calls` calls of `tether.log` into a temp file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "steps.jsonl")
        os.environ["TETHER_STEPS_FILE"] = path
        log = tether.log
        start = time.perf_counter()
        for i in range(calls):
            log(step=i, loss=1.0 / (i + 1), acc=i * 1e-6)
        elapsed = time.perf_counter() - start
        with open(path, "rb") as stream:
            lines = sum(1 for _ in stream)
        if lines != calls:
            raise SystemExit(f"expected {calls} lines, found {lines}")
    return calls / elapsed


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rate = bench(calls)
    print(f"tether.log: {rate:,.0f} calls/s ({calls:,} calls, 2 float metrics each)")


if __name__ == "__main__":
    main()
