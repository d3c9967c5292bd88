"""Fixtures for sharing: a project with outputs, a bare git origin, clones, artifact remotes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, run_tether, write

MAKE = """\
import os, shutil, tether
lr = tether.params()["train"]["lr"]
shutil.rmtree("features", ignore_errors=True)
open("model.bin", "w").write(f"weights for lr={lr}\\n" * 100)
os.makedirs("features", exist_ok=True)
open("features/shared.txt", "w").write("the same in every run\\n")
open(f"features/part-{lr}.txt", "w").write(f"features for {lr}\\n")
open("metrics.json", "w").write('{"acc": %s}' % (1 - lr / 10))
"""

OUTS = ("model.bin", "features")

SPEC = """\
stages:
  train:
    cmd: python make.py
    deps: [make.py]
    params: [train.lr]
    outs: [model.bin, features]
    metrics: [metrics.json]
"""


def make_project(root: Path) -> None:
    write(root / "tether.yaml", SPEC)
    write(root / "params.yaml", "train:\n  lr: 1\n")
    write(root / "make.py", MAKE)
    write(root / ".gitignore", "model.bin\nfeatures/\n")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare git repository playing the shared remote."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    return bare


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A local directory playing the artifact remote."""
    return tmp_path / "artifacts"


@pytest.fixture
def alice(repo: Path, origin: Path, store_dir: Path) -> Path:
    """The project, with the artifact remote configured and committed, pushed to origin."""
    make_project(repo)
    proc = run_tether(repo, "remote", "add", "store", str(store_dir), "--default")
    assert proc.returncode == 0, proc.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    return repo


@pytest.fixture
def bob(alice: Path, origin: Path, tmp_path: Path) -> Path:
    """A second clone of the same project."""
    clone = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return clone


def tether_ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = run_tether(cwd, *args, env=env)
    assert proc.returncode == 0, f"tether {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def run_exp(root: Path, name: str, lr: int, *, env: dict[str, str] | None = None,
            cache: bool = True) -> None:
    """Record a run; with `cache`, store its outputs as the runner is meant to."""
    tether_ok(root, "run", "-q", "-n", name, "-S", f"train.lr={lr}", env=env)
    if cache:
        from tether.project import object_store

        store = object_store(root)
        for out in OUTS:
            store.save(root / out, link=False)


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port; yields its endpoint URL."""
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (pip install 'tether[test]')"
    )
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
