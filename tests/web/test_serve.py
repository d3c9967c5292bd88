"""`tether view` as a real process: it prints its URL, serves, and stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import run_tether
from tether.errors import EXIT_INTERRUPTED, EXIT_MISSING_EXTRA


@pytest.fixture
def views() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def start_view(root: Path, started: list[subprocess.Popen[str]], *args: str
               ) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tether", "view", "--no-open", *args],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "BROWSER": "false"})
    started.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    url = line[line.index("http://"):].split()[0]
    return proc, url


def test_port_0_serves_the_session_and_ctrl_c_stops_it(
    project: Path, views: list[subprocess.Popen[str]]
) -> None:
    proc, url = start_view(project, views, "--port", "0")
    assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
    body = httpx.get(url + "api/session", timeout=30).json()
    assert body["repo"] == project.name
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err


def test_another_host_requires_a_token_and_says_why(
    project: Path, views: list[subprocess.Popen[str]]
) -> None:
    proc, url = start_view(project, views, "--host", "0.0.0.0", "--port", "0")
    assert "?token=" in url
    port = url.split(":")[2].split("/")[0]
    plain = f"http://127.0.0.1:{port}/api/session"
    assert httpx.get(plain, timeout=30).status_code == 403
    token = url.split("?token=")[1]
    assert httpx.get(f"{plain}?token={token}", timeout=30).status_code == 200
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "reachable from other machines" in err


def test_a_port_in_use_is_a_usage_error(project: Path, views: list[subprocess.Popen[str]]
                                        ) -> None:
    _, url = start_view(project, views, "--port", "0")
    port = url.split(":")[2].split("/")[0]
    second = run_tether(project, "view", "--no-open", "--port", port)
    assert second.returncode == 2 and "cannot listen on 127.0.0.1:" in second.stderr


def test_without_the_extra_it_says_which_to_install(project: Path) -> None:
    code = ("import sys; sys.modules['uvicorn'] = None; sys.modules['starlette'] = None\n"
            "from tether.cli.main import main; sys.exit(main(['view', '--no-open']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == EXIT_MISSING_EXTRA
    assert "pip install 'tether[view]'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
