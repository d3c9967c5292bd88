"""A running experiment seen live: its page, then its log lines and step metrics as
server-sent events while it runs, and `end` once it is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import git, write
from web.conftest import Served

SLOW = """\
import os, time
import tether
print("first line", flush=True)
tether.log(step=0, loss=1.0)
while not os.path.exists(os.environ["RELEASE"]):
    time.sleep(0.05)
print("second line <b>bold</b>", flush=True)
tether.log(step=1, loss=0.5)
"""


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of a server-sent event stream, as they arrive."""
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def wait_for(check: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def slow_project(repo: Path) -> None:
    write(repo / "tether.yaml", "stages:\n  train:\n    cmd: python slow.py\n")
    write(repo / "slow.py", SLOW)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "slow")


def follow(url: str, name: str, release: Path, where: str) -> list[tuple[str, dict[str, Any]]]:
    """The live stream of the run `name` (found running, `where`), released once its
    first line arrived, until its end."""
    with httpx.Client(base_url=url, timeout=60) as client:
        wait_for(lambda: client.get("/api/experiments").json()["running"], "the run", 120)
        running = client.get("/api/experiments").json()["running"][0]
        assert (running["name"], running["where"]) == (name, where)
        page = client.get(f"/api/experiments/{name}").json()
        assert page["running"] is True and page["status"] == "running"
        growing = client.get(f"/api/steps?names={name}&metric=loss").json()["series"][0]
        assert growing["name"] == name and growing["total"] <= 2  # read now, not kept
        seen: list[tuple[str, dict[str, Any]]] = []
        with client.stream("GET", f"/api/experiments/{name}/live") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for kind, data in events(response):
                seen.append((kind, data))
                if kind == "log" and "first line" in data["lines"]:
                    release.write_text("go")
                if kind == "end":
                    break
    return seen


def check_seen(seen: list[tuple[str, dict[str, Any]]]) -> None:
    lines = [line for kind, data in seen if kind == "log" for line in data["lines"]]
    assert lines == ["first line", "second line <b>bold</b>"]
    points = [point for kind, data in seen if kind == "step" and data["metric"] == "loss"
              for point in data["points"]]
    assert [(step, value) for step, value, _ in points] == [(0, 1.0), (1, 0.5)]
    statuses = [data["status"] for kind, data in seen if kind == "status"]
    assert statuses == ["running", "success"]
    assert seen[-1][0] == "end"


def check_recorded(url: str, name: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get(f"/api/experiments/{name}").json()
        assert page["running"] is False and page["status"] == "success"
        steps = client.get(f"/api/steps?names={name}&metric=loss").json()["series"][0]
        assert (steps["x"], steps["y"], steps["total"]) == ([0.0, 1.0], [1.0, 0.5], 2)
        body = client.get(f"/api/experiments/{name}/live").text
        assert body.startswith("event: status") and "event: end" in body


@pytest.mark.parametrize("how", ["in-place", "temp"])
def test_a_running_experiment_streams_its_lines_and_steps(
    repo: Path, tmp_path: Path, served: Callable[..., Served], how: str
) -> None:
    slow_project(repo)
    server = served(repo, live_poll=0.05)
    release = tmp_path / "release"
    extra = ["--temp"] if how == "temp" else []
    run = subprocess.Popen([sys.executable, "-m", "tether", "run", "-n", "growing", *extra],
                           cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "RELEASE": str(release)})
    try:
        seen = follow(server.url, "growing", release, how)
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else ""
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    check_seen(seen)
    check_recorded(server.url, "growing")  # recorded now: the record's page, an end at once


def test_a_queued_run_streams_live_from_the_embedded_worker(
    repo: Path, tmp_path: Path, served: Callable[..., Served]
) -> None:
    slow_project(repo)
    queued = subprocess.run([sys.executable, "-m", "tether", "run", "--queue", "-n", "queued"],
                            cwd=repo, capture_output=True, text=True)
    assert queued.returncode == 0, queued.stderr
    server = served(repo, live_poll=0.05)
    release = tmp_path / "release"
    worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--exit-when-idle"],
                              cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "RELEASE": str(release)})
    try:
        seen = follow(server.url, "queued", release, "queued")
        assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    check_seen(seen)
    check_recorded(server.url, "queued")
