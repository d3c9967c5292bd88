"""A recorded project for the viewer's tests, and clients of the viewer serving it.

The project is realistic: two stages (train logs step metrics with `tether.log`,
evaluate writes metrics), an output directory, git-ignored data, a failing variant, a
second baseline on a branch, and hostile text (script and onerror payloads) in a
message, a param and a log line. It is recorded once per module with real `tether run`s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import PINNED_ENV, run_tether, write
from tether.web.app import create_app
from web.browser import (  # noqa: F401  (the browser tests' fixtures)
    big_visit,
    browser,
    browser_project,
    browser_server,
    visit,
)

XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py, data/raw.csv]
    params: [train.lr, train.tag, train.fail]
    outs: [models/]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, models/]
    metrics: [eval/metrics.json]
metrics:
  acc: {direction: max}
  loss: {direction: min}
"""

TRAIN = """\
import os, sys
import tether
p = tether.params()["train"]
os.makedirs("models", exist_ok=True)
for step in range(50):
    loss = 1 / (1 + step * p["lr"])
    tether.log(step=step, loss=loss, acc=1 - loss)
print("training with tag", p["tag"])
if p["fail"]:
    sys.exit("diverged")
open("models/model.txt", "w").write(str(p["lr"]))
"""

EVALUATE = """\
import json, os
lr = float(open("models/model.txt").read())
print("evaluated", lr)
os.makedirs("eval", exist_ok=True)
json.dump({"acc": round(0.5 + lr, 3), "loss": round(1 - lr, 3)},
          open("eval/metrics.json", "w"))
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(PINNED_ENV, HOME=str(home), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


def record(root: Path, *args: str, env: dict[str, str]) -> None:
    proc = run_tether(root, "run", *args, env=env)
    assert proc.returncode in (0, 1), proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five experiments: three on main (one failed, one hostile), two on branch `wide`."""
    base = tmp_path_factory.mktemp("viewer")
    env = _env(base / "home")
    (base / "home").mkdir()
    root = base / "project"
    root.mkdir()
    git_env(root, env, "init", "-q", "-b", "main")
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "train:\n  lr: 0.1\n  tag: plain\n  fail: false\n")
    write(root / "train.py", TRAIN)
    write(root / "evaluate.py", EVALUATE)
    write(root / "data" / "raw.csv", "x,y\n1,2\n")
    write(root / ".gitignore", "data/\n")
    git_env(root, env, "add", "-A")
    git_env(root, env, "commit", "-q", "-m", "pipeline")
    record(root, "-n", "slow", "-S", "train.lr=0.1", env=env)
    record(root, "-n", "fast", "-S", "train.lr=0.3", env=env)
    record(root, "-n", "broken", "-S", "train.fail=true", "-S", "train.lr=0.2", env=env)
    record(root, "-n", "hostile", "-S", "train.lr=0.05", "-S", "train.fail=false",
           "-S", f"train.tag={XSS}",
           "-m", XSS, env=env)
    git_env(root, env, "checkout", "-q", "-b", "wide")
    write(root / "params.yaml", "train:\n  lr: 0.4\n  tag: wide\n  fail: false\n")
    git_env(root, env, "commit", "-qam", "wider")
    record(root, "-n", "wider", env=env)
    record(root, "-n", "slow", "-S", "train.lr=0.15", env=env)  # same name, other baseline
    git_env(root, env, "checkout", "-qf", "main")
    return root


def git_env(root: Path, env: dict[str, str], *args: str) -> None:
    import subprocess

    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def client_for(root: Path, **options: object) -> TestClient:
    """A client of the viewer of `root`, as a browser on loopback would reach it."""
    return TestClient(create_app(root, **options),  # type: ignore[arg-type]
                      base_url="http://127.0.0.1:8765")


@pytest.fixture
def client(project: Path) -> Iterator[TestClient]:
    with client_for(project) as test_client:
        yield test_client




class Served:
    """The viewer served by uvicorn on a free loopback port, in a thread of the test."""

    def __init__(self, root: Path, **options: object) -> None:
        import threading

        import uvicorn

        from tether.web.server import bind

        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        app = create_app(root, **options)  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def serve(root: Path, **options: object) -> Served:
        started.append(Served(root, **options))
        return started[-1]

    yield serve
    for server in started:
        server.close()
