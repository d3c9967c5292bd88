"""A running experiment seen live: its page, then its log lines and step metrics as
server-sent events while it runs, and `end` once it is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from conftest import git, write
from web.conftest import Served

SLOW = """\
import os, time
import tether
print("first line", flush=True)
tether.log(step=0, loss=1.0)
while not os.path.exists("release"):
    time.sleep(0.05)
print("second line <b>bold</b>", flush=True)
tether.log(step=1, loss=0.5)
"""


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
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


def test_a_running_experiment_streams_its_lines_and_steps(
    repo: Path, served: Callable[..., Served]
) -> None:
    write(repo / "tether.yaml", "stages:\n  train:\n    cmd: python slow.py\n")
    write(repo / "slow.py", SLOW)
    write(repo / ".gitignore", "release\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "slow")
    server = served(repo, live_poll=0.05)
    run = subprocess.Popen([sys.executable, "-m", "tether", "run", "-n", "growing"], cwd=repo,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            wait_for(lambda: client.get("/api/experiments").json()["running"], "the run")
            assert client.get("/api/experiments").json()["running"][0]["name"] == "growing"
            page = client.get("/api/experiments/growing").json()
            assert page["running"] is True and page["status"] == "running"
            seen: list[tuple[str, dict[str, object]]] = []
            with client.stream("GET", "/api/experiments/growing/live") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for kind, data in events(response):
                    seen.append((kind, data))
                    if kind == "log" and "first line" in data["lines"]:  # type: ignore[operator]
                        (repo / "release").write_text("go")
                    if kind == "end":
                        break
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else ""
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    lines = [line for kind, data in seen if kind == "log"
             for line in data["lines"]]  # type: ignore[attr-defined]
    assert lines == ["first line", "second line <b>bold</b>"]
    points = [point for kind, data in seen if kind == "step" and data["metric"] == "loss"
              for point in data["points"]]  # type: ignore[attr-defined]
    assert [(step, value) for step, value, _ in points] == [(0, 1.0), (1, 0.5)]
    statuses = [data["status"] for kind, data in seen if kind == "status"]
    assert statuses == ["running", "success"]
    assert seen[-1][0] == "end"
    # recorded now: the page is the record's, and its live stream ends at once
    with httpx.Client(base_url=server.url, timeout=60) as client:
        page = client.get("/api/experiments/growing").json()
        assert page["running"] is False and page["status"] == "success"
        body = client.get("/api/experiments/growing/live").text
        assert body.startswith("event: status") and "event: end" in body
