"""`tether run --queue` for Celery workers on other machines: inputs that exist only here
go through the artifact remote, or the enqueue is refused with the command to run."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from conftest import git, write
from queueing.conftest import tether
from queueing.servers import RedisServer
from tether.errors import EXIT_MISSING_INPUT

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py, data/raw.csv]
    params: [lr, epochs]
    metrics: [metrics.json]
"""


def _celery_project(project: Path, redis_server: RedisServer, tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    write(project / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
        "backend": "celery", "broker": redis_server.url,
        "namespace": f"t{uuid.uuid4().hex[:10]}", "git_remote": "origin"}}))
    write(project / "tether.yaml", SPEC)
    write(project / "data" / "raw.csv", "x,y\n1,2\n")
    write(project / ".gitignore", "/data/raw.csv\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "celery, remote workers")
    git(project, "push", "-q", "origin", "main")
    return project


def test_local_only_inputs_are_refused_with_the_command_then_pushed(
    project: Path, redis_server: RedisServer, tmp_path: Path,
) -> None:
    root = _celery_project(project, redis_server, tmp_path)
    # git-ignored, untracked: a worker elsewhere could never have it
    proc = tether(root, "run", "--queue", check=False)
    assert proc.returncode == EXIT_MISSING_INPUT, proc.stderr
    assert "tether add data/raw.csv" in proc.stderr
    # tracked, but with no artifact remote: its bytes are in this machine's cache only
    tether(root, "add", "data/raw.csv")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "track the data")
    proc = tether(root, "run", "--queue", check=False)
    assert proc.returncode == EXIT_MISSING_INPUT, proc.stderr
    assert "tether remote add NAME URL --default" in proc.stderr
    # with an artifact remote: queued, and the data pushed where the workers read it
    store = tmp_path / "store"
    tether(root, "remote", "add", "store", str(store), "--default")
    tether(root, "run", "--queue")
    key = (root / "data" / "raw.csv.tether").read_text().split("key: b3:")[1].split()[0]
    assert (store / "objects" / "b3" / key[:2] / key[2:]).is_file()
