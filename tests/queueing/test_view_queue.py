"""The viewer's queue page and buttons (`/api/queue`), on both backends."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from conftest import git, write
from queueing.conftest import start_worker, tether
from tether.web.app import create_app


@pytest.fixture(params=["embedded", "celery"])
def backend(request: pytest.FixtureRequest, project: Path) -> str:
    if request.param == "celery":
        redis = request.getfixturevalue("redis_server")
        write(project / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
            "backend": "celery", "broker": redis.url,
            "namespace": f"t{uuid.uuid4().hex[:10]}"}}))
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "celery queue")
    name: str = request.param
    return name


def viewer(root: Path, **options: object) -> TestClient:
    return TestClient(create_app(root, **options),  # type: ignore[arg-type]
                      base_url="http://127.0.0.1:8765")


def entries(client: TestClient) -> dict[str, dict[str, object]]:
    return {e["name"]: e for e in client.get("/api/queue").json()["entries"]}


def test_queue_lists_entries_and_its_buttons_act(project: Path, backend: str) -> None:
    tether(project, "run", "--queue", "-n", "first", "-S", "lr=0.2")
    tether(project, "run", "--queue", "-n", "second", "-S", "lr=0.3")
    with viewer(project) as client:
        body = client.get("/api/queue").json()
        assert body["backend"] == backend and body["workers"] == []
        found = entries(client)
        assert [found[n]["state"] for n in ("first", "second")] == ["queued", "queued"]
        first = found["first"]
        assert first["attempt"] == 0 and first["elapsed"] is None and first["queued_at"]
        kill = f"/api/queue/{first['id']}/kill"
        assert client.post(kill).status_code == 403  # no CSRF header: nothing happens
        assert entries(client)["first"]["state"] == "queued"
        csrf = {"X-Tether-CSRF": client.get("/api/session").json()["csrf"]}
        answer = client.post(kill, headers=csrf).json()
        assert answer == {"ok": True, "entries": [
            {"id": first["id"], "name": "first", "state": "cancelled"}]}
        retried = client.post(f"/api/queue/{first['id']}/retry", headers=csrf).json()
        assert retried["entries"][0]["name"] == "first-r2"
        assert entries(client)["first-r2"]["state"] == "queued"
        # the retried entry is queued again; the second, still waiting, cannot be retried
        refused = client.post(f"/api/queue/{found['second']['id']}/retry", headers=csrf)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == 10
        removed = client.post(f"/api/queue/{found['second']['id']}/kill", headers=csrf)
        assert removed.status_code == 200
        client.post(f"/api/queue/{found['second']['id']}/remove", headers=csrf)
        assert "second" not in entries(client)
        assert client.post(f"/api/queue/{first['id']}/explode", headers=csrf).status_code == 400
    with viewer(project, read_only=True) as client:
        csrf = {"X-Tether-CSRF": client.get("/api/session").json()["csrf"]}
        response = client.post(f"/api/queue/{entries(client)['first-r2']['id']}/kill",
                               headers=csrf)
        assert response.status_code == 403
        assert entries(client)["first-r2"]["state"] == "queued"


def test_a_running_entry_shows_its_worker_and_can_be_killed(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    tether(project, "run", "--queue", "-n", "long")
    workers.append(start_worker(project, env={"TRAIN_SLEEP": "120"}))
    with viewer(project) as client:
        deadline = time.monotonic() + 60
        while entries(client)["long"]["state"] != "running":
            assert time.monotonic() < deadline, "the worker never started the entry"
            time.sleep(0.2)
        body = client.get("/api/queue").json()
        entry = body["entries"][0]
        assert entry["worker"] and entry["host"] and entry["attempt"] == 1
        assert entry["elapsed"] is not None and entry["silence"] is not None
        assert body["workers"][0]["id"] == entry["worker"]
        assert body["workers"][0]["last_heartbeat"] is not None
        csrf = {"X-Tether-CSRF": client.get("/api/session").json()["csrf"]}
        assert client.post(f"/api/queue/{entry['id']}/kill", headers=csrf).json()["ok"]
        while entries(client)["long"]["state"] == "running":
            assert time.monotonic() < deadline + 60, "the kill never landed"
            time.sleep(0.2)
        assert entries(client)["long"]["state"] == "cancelled"


def test_queue_lists_idle_workers_and_why_an_entry_waits_and_reads_only(
    project: Path,
) -> None:
    """Idle workers appear with their tags; a waiting entry says why no worker takes it;
    `--read-only` leaves an expired lease alone (the writable viewer requeues it)."""
    from tether.queue.client import open_queue

    tether(project, "run", "--queue", "-n", "gpu-job", "--require", "gpu")
    tether(project, "run", "--queue", "-n", "lost")
    now = time.time()
    backend = open_queue(project)
    try:
        backend.announce_worker("cpubox:7", ["default"], now, 600.0, ["cpu"])
        lost = backend.claim(["default"], "gone:9", now - 1000, 1.0, ())
        assert lost is not None and lost.name == "lost"
    finally:
        backend.close()
    with viewer(project, read_only=True) as client:
        body = client.get("/api/queue").json()
        found = {e["name"]: e for e in body["entries"]}
        assert found["lost"]["state"] == "running"  # the look wrote nothing
        gpu = found["gpu-job"]
        assert gpu["requires"] == ["gpu"]
        assert "no worker has gpu" in gpu["blocked"] and "cpubox:7 has cpu" in gpu["blocked"]
        workers = {w["id"]: w for w in body["workers"]}
        idle = workers["cpubox:7"]
        assert idle["state"] == "idle" and idle["tags"] == ["cpu"]
        assert idle["queues"] == ["default"] and idle["until"] == pytest.approx(now + 600)
        assert idle["last_heartbeat"] == pytest.approx(now)  # its announcement, though idle
        assert workers["gone:9"]["state"] == "busy" and workers["gone:9"]["until"] is None
    assert entries_of(project)["lost"] == "running"
    with viewer(project) as client:
        assert entries(client)["lost"]["state"] == "queued"  # requeued: its lease ran out


def test_read_only_viewer_makes_no_queue(project: Path) -> None:
    from tether.layout import queue_db

    with viewer(project, read_only=True) as client:
        assert client.get("/api/queue").json() == {
            "entries": [], "workers": [], "backend": "embedded"}
    assert not queue_db(project).exists()


def entries_of(root: Path) -> dict[str, str]:
    from tether.queue.client import open_queue

    backend = open_queue(root)
    try:
        return {e.name: e.state for e in backend.entries()}
    finally:
        backend.close()


def test_an_attempt_running_elsewhere_streams_its_output(project: Path) -> None:
    """A running entry of a worker on another machine (its run folder is not here) is
    still live: its combined output through the queue."""
    from tether.queue.base import Outcome
    from tether.queue.client import open_queue

    tether(project, "run", "--queue", "-n", "remote")
    now = time.time()
    backend = open_queue(project)
    try:
        entry = backend.claim(["default"], "elsewhere:1", now, 600.0, ())
        assert entry is not None
        output = backend.attempt_dir(entry.id, entry.attempt) / "output.log"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("epoch 1 <img src=x onerror=alert(1)>\npartial")
    finally:
        backend.close()
    with viewer(project) as client:
        running = client.get("/api/experiments").json()["running"]
        assert [(r["name"], r["where"]) for r in running] == [("remote", "queued")]
        logs = client.get("/api/experiments/remote/logs").json()
        assert logs["lines"] == ["epoch 1 <img src=x onerror=alert(1)>", "partial"]

        def finish() -> None:  # while the stream is open, as the worker elsewhere would
            time.sleep(1.0)
            done = open_queue(project)
            try:
                done.finish(entry.id, entry.attempt, "elsewhere:1",
                            Outcome(state="done", status="success"), time.time())
            finally:
                done.close()

        finisher = threading.Thread(target=finish)
        finisher.start()
        body = client.get("/api/experiments/remote/live").text
        finisher.join()
    # complete lines while it runs; the unfinished last one once it ended
    assert '"lines":["epoch 1 <img src=x onerror=alert(1)>"]' in body
    assert '"lines":["partial"]' in body
    assert '{"status":"success"}' in body and body.rstrip().endswith('{"name":"remote"}')
