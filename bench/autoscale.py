"""Play KEDA's loop on this machine: scale `tether worker` processes on /metrics.

A project with one short stage gets a burst of --experiments queued entries, then a
tail of silence. An exporter (`tether metrics --port P`) serves /metrics; every
--poll seconds the loop reads it and moves the number of worker processes toward

    desired = min(--max-workers, ceil((tether_queue_depth + tether_queue_running) / --target))

as KEDA's ScaledObject on that query does (deploy/k8s/scaledobject-prometheus.yaml):
it starts workers at once when more are wanted, and SIGTERMs workers (each drains
with --on-term requeue) only after --cooldown seconds without a scale event. A scrape
that fails or lacks the gauges changes nothing (KEDA's fallback, not a scale to zero).

At the end it checks every entry is done and recorded exactly once (one experiment
ref per entry, distinct run ids), that no worker is left, and prints the
worker-seconds the autoscaled pool used against a fixed pool of --max-workers
running over the same span.

    python bench/autoscale.py [--experiments 100] [--max-workers 4] [--target 2] [--json]
    python bench/autoscale.py --backend celery [--redis redis://HOST:PORT/DB]

With `--backend celery` the project's queue is the Celery backend on Redis (a private
redis-server on a free port unless --redis names one): Celery worker processes, the
state and /metrics read from Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))},
       "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
       "GIT_CONFIG_NOSYSTEM": "1", "TETHER_LOG_FORMAT": "logfmt"}
SPEC = """\
stages:
  train:
    cmd: python train.py
    params: [lr]
    metrics: [metrics.json]
"""
TRAIN = """\
import json, os, time
with open(os.environ["RUNS_LOG"], "a") as log:  # every start, abandoned ones included
    log.write(os.environ.get("TETHER_SEED", "?") + "\\n")
time.sleep(float(os.environ.get("TRAIN_SLEEP", "0.2")))
json.dump({"acc": 1.0}, open("metrics.json", "w"))
"""


def git(cwd: Path, *argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True,
                          check=True, env=ENV).stdout.strip()


def tether(cwd: Path, *argv: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tether", *argv], cwd=cwd, text=True,
                          capture_output=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"tether {' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def desired_workers(depth: float, running: float, target: float, most: int) -> int:
    """What KEDA asks for: ceil(work / target per replica), within [0, most]."""
    return max(0, min(most, math.ceil((depth + running) / target)))


def make_project(root: Path, runs_log: Path, redis_url: str | None) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    if redis_url is not None:
        (root / ".tether").mkdir()
        (root / ".tether" / "config.yaml").write_text(json.dumps({"queue": {
            "backend": "celery", "broker": redis_url, "namespace": f"bench{os.getpid()}",
            "git_remote": None}}))
    (root / "tether.yaml").write_text(SPEC)
    (root / "params.yaml").write_text("lr: 0.1\n")
    (root / "train.py").write_text(TRAIN)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    ENV["RUNS_LOG"] = str(runs_log)


@contextlib.contextmanager
def private_redis(folder: Path) -> Any:
    """A redis-server on a free loopback port (no persistence), for --backend celery."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("--backend celery needs redis-server (or --redis URL)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str) -> tuple[float, float] | None:
    """(depth, running) of queue default from /metrics; None when it cannot be read."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = {"tether_queue_depth": 0.0, "tether_queue_running": 0.0}
    seen = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in values:
                seen.add(sample.name)
                if sample.labels.get("queue") == "default":
                    values[sample.name] = sample.value
        seen |= {family.name} & set(values)
    if seen != set(values):
        return None  # the gauges vanished: the exporter lost the store
    return values["tether_queue_depth"], values["tether_queue_running"]


class Pool:
    """Worker processes started and stopped by the loop, and what they cost."""

    def __init__(self, root: Path, logs: Path, clock: Any = time.monotonic) -> None:
        self.root, self.logs, self.clock = root, logs, clock
        self.running: list[tuple[subprocess.Popen[bytes], float]] = []
        self.stopping: list[tuple[subprocess.Popen[bytes], float]] = []
        self.worker_seconds = 0.0
        self.started = self.peak = 0

    def reap(self) -> None:
        for group in (self.running, self.stopping):
            for item in [item for item in group if item[0].poll() is not None]:
                group.remove(item)
                self.worker_seconds += self.clock() - item[1]

    def size(self) -> int:
        return len(self.running)

    def start(self) -> None:
        log = open(self.logs / f"worker-{self.started}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "worker", "-j", "1", "--on-term", "requeue",
             "--lease", "10"], cwd=self.root, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        log.close()
        self.running.append((proc, self.clock()))
        self.started += 1
        self.peak = max(self.peak, len(self.running))

    def stop_one(self) -> None:
        """SIGTERM the newest worker (it drains: its run, if any, goes back to the queue)."""
        proc, began = self.running.pop()
        proc.send_signal(signal.SIGTERM)
        self.stopping.append((proc, began))

    def close(self, timeout: float = 60) -> None:
        while self.running:
            self.stop_one()
        deadline = self.clock() + timeout
        while self.stopping and self.clock() < deadline:
            self.reap()
            time.sleep(0.1)
        for proc, _ in self.stopping:
            proc.kill()
        self.reap()


def autoscale(root: Path, url: str, pool: Pool, opts: argparse.Namespace,
              expected: int) -> dict[str, Any]:
    """The loop; returns when the queue was empty, the pool at zero and the tail over."""
    began = pool.clock()
    last_change = began
    drained_at: float | None = None
    events = 0
    while True:
        pool.reap()
        figures = scrape(url)
        now = pool.clock()
        if figures is not None:
            want = desired_workers(*figures, opts.target, opts.max_workers)
            if want > pool.size():
                while pool.size() < want:
                    pool.start()
                last_change, events = now, events + 1
            elif want < pool.size() and now - last_change >= opts.cooldown:
                while pool.size() > want:
                    pool.stop_one()
                last_change, events = now, events + 1
            if figures == (0.0, 0.0) and drained_at is None:
                drained_at = now
            elif figures != (0.0, 0.0):
                drained_at = None
        idle = pool.size() == 0 and not pool.stopping
        if drained_at is not None and idle and now - drained_at >= opts.tail:
            break
        if now - began > opts.timeout:
            raise SystemExit(f"not drained after {opts.timeout:g}s")
        time.sleep(opts.poll)
    span = pool.clock() - began
    return {"span_s": round(span, 2), "scale_events": events, "peak_workers": pool.peak,
            "workers_started": pool.started,
            "worker_seconds": round(pool.worker_seconds, 2),
            "fixed_pool_worker_seconds": round(opts.max_workers * span, 2),
            # A fixed pool switched off by hand the moment the burst was done:
            "fixed_pool_burst_only_worker_seconds": round(
                opts.max_workers * ((drained_at or pool.clock()) - began), 2),
            "drained_after_s": round((drained_at or pool.clock()) - began, 2)}


def check_exactly_once(root: Path, runs_log: Path, expected: int) -> dict[str, Any]:
    """Every entry done and recorded once; how many runs were started (abandoned included)."""
    rows = [json.loads(line) for line in tether(root, "queue", "status", "--json").splitlines()]
    states = {row["state"] for row in rows}
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/tether/exps/").splitlines()
    names = sorted(ref.rsplit("/", 1)[1] for ref in refs)
    run_ids = {row["run_id"] for row in rows}
    starts = len(runs_log.read_text().splitlines()) if runs_log.exists() else 0
    return {
        "entries": len(rows), "states": sorted(states), "recorded": len(names),
        "distinct_run_ids": len(run_ids),
        "exactly_once": len(rows) == expected and states == {"done"} and
        names == sorted(str(row["name"]) for row in rows) and len(run_ids) == expected,
        "runs_started": starts, "runs_abandoned_by_scale_down": starts - expected,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--target", type=float, default=2.0, help="entries per worker")
    parser.add_argument("--cooldown", type=float, default=5.0)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--tail", type=float, default=5.0, help="silence after the burst")
    parser.add_argument("--sleep", type=float, default=0.2, help="the stage's run time")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--backend", choices=("embedded", "celery"), default="embedded")
    parser.add_argument("--redis", metavar="URL", help="with --backend celery: this Redis")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args(argv)
    ENV["TRAIN_SLEEP"] = str(opts.sleep)
    with tempfile.TemporaryDirectory(prefix="tether-autoscale-") as tmp, \
            contextlib.ExitStack() as stack:
        redis_url = opts.redis
        if opts.backend == "celery" and redis_url is None:
            redis_url = stack.enter_context(private_redis(Path(tmp)))
        result = run_scenario(Path(tmp), opts, redis_url if opts.backend == "celery" else None)
    if opts.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")
    return 0 if result["exactly_once"] and result["workers_left"] == 0 else 1


def run_scenario(tmp: Path, opts: argparse.Namespace, redis_url: str | None) -> dict[str, Any]:
    """Make the project, queue the burst, run the loop, check the records."""
    root, runs_log, logs = tmp / "project", tmp / "runs.log", tmp / "logs"
    make_project(root, runs_log, redis_url)
    logs.mkdir()
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tether", "metrics", "--port", str(port), "--bind",
         "127.0.0.1"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    pool = Pool(root, logs)
    try:
        tether(root, "run", "--queue", "-n", "burst", "--repeat", str(opts.experiments))
        figures = autoscale(root, f"http://127.0.0.1:{port}/metrics", pool, opts,
                            opts.experiments)
    finally:
        pool.close()
        exporter.terminate()
        exporter.wait(30)
    return {"backend": opts.backend, "experiments": opts.experiments,
            "max_workers": opts.max_workers, "target": opts.target,
            "cooldown_s": opts.cooldown, "tail_s": opts.tail,
            **figures, **check_exactly_once(root, runs_log, opts.experiments),
            "workers_left": pool.size() + len(pool.stopping)}

if __name__ == "__main__":
    raise SystemExit(main())
