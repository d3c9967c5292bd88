"""`tether metrics` scrape time with 10,000 queued entries, embedded and Celery+Redis.

For each backend, in a fresh repository with the one-stage pipeline of overhead.py
(one experiment recorded): `--n` entries are queued in one enqueue through the
backend (10,000 by default; half waiting, a tenth running under live leases, the
rest spread over four queues), then a scrape is timed three ways, median of
`--repeat`:

- collect: the collector's read and the text exposition, in this process (what
  a long-running `tether metrics --port` does per scrape);
- http: GET /metrics from `tether.obs.metrics.serve` on loopback;
- command: the whole `tether metrics --once` process (start-up included).

The target is a scrape (http) in at most 50 ms. The Celery column runs a private
redis-server (see queues.py).

    python bench/metrics.py [--n 10000] [--repeat 21] [--skip-celery]

Results: a markdown table on stdout and JSON in bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from overhead import (
    BASE_LR,
    DEFAULT_TETHER,
    TETHER_YAML,
    TRAIN_PY,
    clean_environment,
    commit_all,
    make_repo,
    run_checked,
)
from queues import private_redis

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "metrics.json"
QUEUES = ("default", "gpu", "cpu", "big")


def _entries(count: int) -> list:  # type: ignore[type-arg]
    from tether.queue.base import Entry

    return [Entry(id=f"b{n:09d}", name=f"bench-{n}", baseline="b" * 40, snapshot="c" * 40,
                  snapshot_ref="refs/tether/queue/bench", run_id=f"r{n:023d}",
                  queue=QUEUES[n % len(QUEUES)], created_at=1_700_000_000.0 + n)
            for n in range(count)]


def _fill(root: Path, count: int) -> None:
    """Queue `count` entries and start a tenth of them under leases that stay live."""
    from tether.queue.client import open_queue

    backend = open_queue(root)
    try:
        now = time.time()
        backend.enqueue(_entries(count), now)
        for n in range(count // 10):
            backend.claim([QUEUES[n % len(QUEUES)]], f"bench:{n % 8}", now, 3600)
        for worker in range(8):
            backend.announce_worker(f"bench:{worker}", QUEUES, now, 3600)
    finally:
        backend.close()


def _median_ms(call: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def measure(root: Path, repeat: int, tether_cmd: list[str]) -> dict[str, float]:
    from tether.obs.metrics import ProjectMetrics, exposition, serve
    from tether.queue.client import open_queue

    backend = open_queue(root)
    collector = ProjectMetrics(root, backend)
    try:
        text = exposition(collector)  # warm: index refreshed, connections open
        assert "tether_queue_depth" in text
        collect = _median_ms(lambda: exposition(collector), repeat)
        port = _free_port()
        stop = serve(collector, port, "127.0.0.1")
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            urllib.request.urlopen(url).read()
            http = _median_ms(lambda: urllib.request.urlopen(url).read(), repeat)
        finally:
            stop()
    finally:
        backend.close()
    command = _median_ms(lambda: run_checked([*tether_cmd, "metrics", "--once"], root,
                                             dict(os.environ), "tether metrics --once"),
                         max(3, repeat // 4))
    return {"collect_ms": collect, "http_ms": http, "command_ms": command}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench(repo: Path, env: dict[str, str], n: int, repeat: int, tether_cmd: list[str],
          config: str | None) -> dict[str, float]:
    make_repo(repo, env, {"train.py": TRAIN_PY, "params.yaml": f"lr: {BASE_LR}\n",
                          "tether.yaml": TETHER_YAML})
    if config is not None:
        (repo / ".tether").mkdir(exist_ok=True)
        (repo / ".tether" / "config.yaml").write_text(config)
    commit_all(repo, env)
    run_checked([*tether_cmd, "run", "-S", "lr=0.5"], repo, env, "tether run")
    _fill(repo, n)
    return measure(repo, repeat, tether_cmd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    tether_cmd = [str(DEFAULT_TETHER)] if DEFAULT_TETHER.exists() else [
        sys.executable, "-m", "tether"]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tether-bench-metrics-") as tmp:
        scratch = Path(tmp)
        env = clean_environment(scratch)
        os.environ.update(env)  # the in-process collector reads git as the commands do
        results["embedded"] = bench(scratch / "embedded", env, args.n, args.repeat,
                                    tether_cmd, None)
        if not args.skip_celery:
            with private_redis(scratch / "redis") as url:
                config = (f"queue:\n  backend: celery\n  broker: {url}\n"
                          f"  namespace: bench{os.getpid()}\n")
                results["celery"] = bench(scratch / "celery", env, args.n, args.repeat,
                                          tether_cmd, config)
    print(f"| backend ({args.n} entries) | collect (ms) | GET /metrics (ms) | "
          "tether metrics --once (ms) |")
    print("|---|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['collect_ms']} | {figures['http_ms']} | "
              f"{figures['command_ms']} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "entries": args.n, "repeat": args.repeat, "machine": platform.platform(),
        "python": platform.python_version(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
