"""The invariant matrix (tests/test_invariants.py) through the Celery backend on a private
Redis: a worker here, and a worker in another clone that knows only the git remote, the
broker and the artifact remote."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from conftest import git
from queueing.servers import RedisServer
from test_invariants import Matrix, counts, git_state


def _use_celery(matrix: Matrix, redis_url: str) -> None:
    config = matrix.root / ".tether" / "config.yaml"
    data = yaml.safe_load(config.read_text()) or {}
    data["queue"] = {"backend": "celery", "broker": redis_url,
                     "namespace": f"m{uuid.uuid4().hex[:10]}", "git_remote": "origin"}
    config.write_text(yaml.safe_dump(data))
    git(matrix.root, "add", "-A")
    git(matrix.root, "commit", "-q", "-m", "celery queue")
    git(matrix.root, "push", "-q", "origin", "main")


def test_celery_queue_and_a_worker_in_another_clone_record_the_truth(
    repo: Path, tmp_path: Path, redis_server: RedisServer,
) -> None:
    matrix = Matrix(repo, tmp_path)
    matrix.setup()
    _use_celery(matrix, redis_server.url)
    matrix.run("run", "-n", "warm")
    before = git_state(matrix.root)

    matrix.run("run", "--queue", "-n", "cq", "-S", "train.lr=0.3,0.4")
    matrix.run("run", "--queue", "-n", "cqbad", "-S", "train.fail=true")
    matrix.run("worker", "--exit-when-idle", ok=(1,))
    matrix.check("cq-1", status="success", lr=0.3)
    matrix.check("cq-2", status="success", lr=0.4)
    matrix.check("cqbad", status="failed", lr=None)
    assert counts(matrix.count_dir)["prepare"] == 1  # reused, not run again
    assert git_state(matrix.root) == before

    # A worker on "another machine": its own clone, no shared cache, no data file.
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", "-b", "main", str(matrix.origin), str(elsewhere))
    assert not (elsewhere / "data" / "raw.csv").exists()
    matrix.run("run", "--queue", "-n", "rq", "-S", "train.lr=0.5")
    from test_invariants import tether

    tether(elsewhere, "worker", "--exit-when-idle", env=matrix.env)
    tether(matrix.root, "pull", "origin", "rq")
    matrix.check("rq", status="success", lr=0.5)  # outputs came through the artifact store
    assert git_state(matrix.root) == before
