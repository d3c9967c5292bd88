"""Queue fixtures: a small project with a trivial pipeline, and worker subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, write
from queueing.servers import RABBITMQ_SERVER, REDIS_SERVER, RabbitServer, RedisServer

TRAIN = """\
import json, os, pathlib, sys, time
import yaml
p = yaml.safe_load(open("params.yaml"))
print("training", p, "seed", os.environ.get("TETHER_SEED"), flush=True)
time.sleep(float(os.environ.get("TRAIN_SLEEP", "0")))
marker = os.environ.get("TRAIN_FAIL_TIMES")
if marker:  # fail with exit 3 the first N times (counted in a file outside the worktree)
    path, times = marker.rsplit(":", 1)
    count = int(pathlib.Path(path).read_text()) if os.path.exists(path) else 0
    pathlib.Path(path).write_text(str(count + 1))
    if count < int(times):
        sys.exit(int(os.environ.get("TRAIN_FAIL_CODE", "3")))
epochs = sum(p["epochs"]) if isinstance(p["epochs"], list) else p["epochs"]
json.dump({"acc": p["lr"] * epochs}, open("metrics.json", "w"))
"""

SPEC = """\
stages:
  train:
    cmd: python train.py
    params: [lr, epochs]
    metrics: [metrics.json]
    retries: 2
    retry_on: [3]
"""


@pytest.fixture
def project(repo: Path) -> Path:
    """A project whose one stage trains in no time (tunable through TRAIN_* variables)."""
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "lr: 0.1\nepochs: 1\n")
    write(repo / "train.py", TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


def tether(root: Path, *args: str, env: dict[str, str] | None = None,
           check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # -P, as the `tether` script runs: a project's tether.py must not hide the package
    proc = subprocess.run([sys.executable, "-P", "-m", "tether", *args], cwd=root, text=True,
                          capture_output=True, env={**os.environ, **(env or {})},
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"tether {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def start_worker(root: Path, *args: str, env: dict[str, str] | None = None,
                 ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-P", "-m", "tether", "worker", *args], cwd=root,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def queue_status(root: Path) -> list[dict[str, object]]:
    out = tether(root, "queue", "status", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line]


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes started by a test; killed if the test leaves any behind."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server shared by the session (each test uses its own namespace)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    if RABBITMQ_SERVER is None:
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    server = RabbitServer(tmp_path_factory.mktemp("rabbit"), consumer_timeout_ms=3000)
    server.start()
    yield server
    server.close()
