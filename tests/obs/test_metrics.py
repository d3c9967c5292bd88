"""`tether metrics`: exact figures read from the queue's state, on both backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import git, write
from feedback.receivers import free_port, http_receiver
from obs.conftest import tether
from queueing.servers import RedisServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def without_time(samples: Samples) -> Samples:
    return {key: figure for key, figure in samples.items()
            if key[0] != "tether_oldest_waiting_seconds"}


def metrics(root: Path) -> Samples:
    return scrape(tether(root, "metrics", "--once").stdout)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout}s")
        time.sleep(0.2)


def http_get(port: int, timeout: float = 60) -> str:
    """GET /metrics on loopback, waiting for the server to listen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_worker(root: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tether", "worker", *args], cwd=root,
                            text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **env})


def test_metrics_count_exactly_through_a_lost_worker_and_a_retry(
    backend_project: Path, workers: list[subprocess.Popen[str]],
) -> None:
    root = backend_project
    for name in ("first", "second"):
        tether(root, "run", "--queue", "-n", name)
    tether(root, "run", "--queue", "-n", "bad", "-S", "lr=-1")
    tether(root, "run", "--queue", "gpu", "--repeat", "2", "-n", "big")
    before = metrics(root)
    assert value(before, "tether_queue_depth", queue="default") == 3
    assert value(before, "tether_queue_depth", queue="gpu") == 2
    assert value(before, "tether_queue_running", queue="default") == 0
    assert value(before, "tether_workers", queue="default") == 0
    assert value(before, "tether_runs_total", status="success") == 0
    assert value(before, "tether_oldest_waiting_seconds", queue="gpu") >= 0

    # A worker (serving the metrics too) takes the first entry, and is SIGKILLed in the
    # middle of it.
    port = free_port()
    doomed = start_worker(root, "--lease", "2", "--metrics-port", str(port),
                          "--metrics-bind", "127.0.0.1", env={"TRAIN_SLEEP": "60"})
    workers.append(doomed)  # type: ignore[arg-type]
    wait_until(lambda: value(metrics(root), "tether_queue_running", queue="default") == 1,
               "one entry running")
    during = metrics(root)
    served = scrape(http_get(port))
    # Nothing moves while the run sleeps, but time.
    assert without_time(served) == without_time(during)
    assert value(during, "tether_queue_depth", queue="default") == 2
    assert value(during, "tether_workers", queue="default") == 1
    assert value(during, "tether_workers", queue="gpu") == 0
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(30)

    # Its lease runs out; the next worker requeues the entry (one lost worker) and runs
    # everything of its queue: `bad` fails, is retried once, and fails again.
    time.sleep(2.5)
    with http_receiver() as receiver:
        proc = tether(root, "worker", "--exit-when-idle", "--ok-on-failed-runs", "--lease", "5",
                      "--backoff", "0.1", env={"TETHER_NOTIFY": receiver.url()}, timeout=300)
        receiver.wait_for(1)
    assert "entry_requeued" in proc.stderr
    after = metrics(root)
    assert value(after, "tether_queue_depth", queue="default") == 0
    assert value(after, "tether_queue_depth", queue="gpu") == 2
    assert value(after, "tether_queue_running", queue="default") == 0
    assert value(after, "tether_workers", queue="default") == 0  # both gone
    assert value(after, "tether_lost_workers_total") == 1
    assert value(after, "tether_retries_total") == 1
    assert value(after, "tether_runs_total", status="success") == 2
    assert value(after, "tether_runs_total", status="failed") == 1
    assert value(after, "tether_oldest_waiting_seconds", queue="default") == 0
    # train ran in `first` and `bad` (whose retried attempt is not recorded); `second`,
    # with the same params as `first`, restored its outputs from the run-cache.
    assert value(after, "tether_stage_duration_seconds_count", stage="train") == 2
    assert value(after, "tether_stage_duration_seconds_bucket", stage="train", le="+Inf") == 2
    assert value(after, "tether_stage_timeouts_total", kind="timeout") == 0
    journal = [json.loads(line) for line in
               (root / ".tether" / "notify" / "deliveries.jsonl").read_text().splitlines()]
    assert value(after, "tether_notifications_total", outcome="delivered") == sum(
        1 for entry in journal if entry["ok"]) >= 1
    # The index is only a cache of the refs: rebuilt, it gives the same figures.
    for path in (root / ".tether").glob("index.db*"):
        path.unlink()
    assert without_time(metrics(root)) == without_time(after)


def test_metrics_are_served_over_http_and_count_timeouts(pipeline_project: Path) -> None:
    root = pipeline_project
    spec = (root / "tether.yaml").read_text()
    write(root / "tether.yaml", spec.replace("    cmd: python train.py\n",
                                             "    cmd: python train.py\n    timeout: 1\n"))
    git(root, "commit", "-q", "-am", "a timeout")
    proc = tether(root, "run", env={"TRAIN_SLEEP": "20"}, check=False)
    assert proc.returncode == 124, proc.stderr
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tether", "metrics", "--port", str(port),
                               "--bind", "127.0.0.1"], cwd=root, stderr=subprocess.PIPE,
                              text=True)
    try:
        samples = scrape(http_get(port))
        assert value(samples, "tether_stage_timeouts_total", kind="timeout") == 1
        assert value(samples, "tether_stage_timeouts_total", kind="stall") == 0
        assert value(samples, "tether_runs_total", status="timeout") == 1
        assert value(samples, "tether_stage_duration_seconds_count", stage="prepare") == 1
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, server.stderr.read() if server.stderr else ""
    assert "event=serving_metrics" in (server.stderr.read() if server.stderr else "")


def test_a_busy_port_is_a_usage_error(pipeline_project: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = tether(pipeline_project, "metrics", "--port", str(port), "--bind", "127.0.0.1",
                      check=False)
    assert proc.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr


def test_a_state_store_away_leaves_the_queue_gauges_out(
    pipeline_project: Path, tmp_path: Path, redis_server: RedisServer,
) -> None:
    """The gauges vanish (alert on absent()) and the rest is served, in seconds."""
    own = RedisServer(tmp_path / "own-redis")
    own.start()
    write(pipeline_project / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
        "backend": "celery", "broker": own.url, "namespace": "away"}}))
    tether(pipeline_project, "run", "--queue", "-n", "waiting")
    assert value(metrics(pipeline_project), "tether_queue_depth", queue="default") == 1
    own.stop()
    proc = tether(pipeline_project, "metrics", "--once", timeout=30)
    names = {name for name, _ in scrape(proc.stdout)}
    assert "tether_queue_depth" not in names and "tether_runs_total" in names
    assert "event=queue_stats_failed" in proc.stderr and "unreachable" in proc.stderr
