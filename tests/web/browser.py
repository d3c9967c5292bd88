"""Fixtures of the viewer's browser tests (imported by test_browser.py): a project with
real runs, `tether view` on loopback, and Debian's Chromium driven by Playwright (never
`playwright install`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import PINNED_ENV, git, write

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(2)</script>"
XSS_TAG = "<svg/onload=alert(3)>"

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.lr, train.note, train.hold]
    metrics: [metrics.json]
metrics:
  acc: {direction: max}
  loss: {direction: min}
"""
# Logs its note and a loss curve; with `hold` set, prints a tick every 0.2 s until that
# file exists (the live test's running experiment).
TRAIN = """\
import json, os, time
import tether
p = tether.params()["train"]
print("note:", p["note"], flush=True)
for step in range(20):
    tether.log(step=step, loss=p["lr"] * 10 / (step + 1))
tick = 0
while p["hold"] and not os.path.exists(p["hold"]) and tick < 900:
    print(f"tick {tick}", flush=True)
    tick += 1
    time.sleep(0.2)
json.dump({"acc": round(1 - p["lr"], 4), "loss": p["lr"]}, open("metrics.json", "w"))
"""
PARAMS = "train:\n  lr: 0.1\n  note: plain\n  hold: ''\n"
RUNS = {"a": "0.1", "b": "0.01", "c": "0.5"}


class Project:
    """A repository with experiments recorded by `tether run`, and the env to run tether."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def tether(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tether", *args], cwd=self.root,
                              capture_output=True, text=True, env=self.env, timeout=timeout)

    def tether_ok(self, *args: str) -> str:
        proc = self.tether(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tether", *args], cwd=self.root,
                                env=self.env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)


def project_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))}
    env.update(PINNED_ENV, HOME=str(home), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def new_repo(root: Path, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write(root / "tether.yaml", SPEC)
    write(root / "train.py", TRAIN)
    write(root / "params.yaml", PARAMS)
    write(root / ".gitignore", "metrics.json\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")


@pytest.fixture(scope="module")
def browser_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Runs a, b, c (lr 0.1, 0.01, 0.5) and `xss`, whose note, message and baseline tag
    are script payloads, all recorded by real `tether run`s."""
    env = project_env(tmp_path_factory.mktemp("home"))
    root = tmp_path_factory.mktemp("view") / "project"
    new_repo(root, env)
    project = Project(root, env)
    for name, lr in RUNS.items():
        project.tether_ok("run", "-n", name, "-S", f"train.lr={lr}", "-m", f"lr {lr}")
    project.tether_ok("run", "-n", "xss", "-S", "train.lr=0.3", "-S", f"train.note={XSS_IMG}",
                      "-m", XSS_SCRIPT)
    git(root, "tag", XSS_TAG)
    return project


def ensure_front_end() -> None:
    """Build web/ into the package when it is missing or stale (a no-op otherwise)."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build-web.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


class Server:
    """`tether view --port 0 --no-open` in a subprocess; its URL from its first line."""

    def __init__(self, project: Project, *args: str) -> None:
        self.proc = project.start("view", "--port", "0", "--no-open", *args)
        self.output: list[str] = []
        found = threading.Event()
        self.url = ""

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = re.search(r"http://127\.0\.0\.1:\d+/", line)
                if match and not self.url:
                    self.url = match.group(0)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            pytest.fail("tether view printed no URL:\n" + "".join(self.output))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser_server(browser_project: Project) -> Iterator[Server]:
    ensure_front_end()
    server = Server(browser_project)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium; missing, the tests fail under CI and are skipped elsewhere."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (scripts/ensure-services.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """A page that records every request and dialog, and saves screenshots."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def go(self, hash_path: str) -> Any:
        self.page.goto(self.base + hash_path)
        return self.page

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def offsite(self) -> list[str]:
        """Requests that went anywhere but the server on loopback."""
        return [url for url in self.requests
                if not url.startswith((self.base, "data:", "blob:"))]


def open_visit(browser: Any, server: Server) -> tuple[Any, Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    return context, Visit(context.new_page(), server.url)


@pytest.fixture
def visit(browser: Any, browser_server: Server) -> Iterator[Visit]:
    """A fresh page on the server; no dialog, off-site request or page error allowed."""
    context, visit = open_visit(browser, browser_server)
    yield visit
    context.close()
    assert visit.dialogs == [], f"a dialog fired: {visit.dialogs}"
    assert visit.offsite() == [], f"requests left loopback: {visit.offsite()}"
    assert visit.errors == [], f"errors in the page: {visit.errors}"


@pytest.fixture(scope="module")
def big_visit(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Visit]:
    """A page on a server of 10,000 experiments over 10 baselines, written by one
    `git fast-import` stream (bench/view_server.py)."""
    sys.path.insert(0, str(REPO / "bench"))
    import view_server

    env = project_env(tmp_path_factory.mktemp("home"))
    root = tmp_path_factory.mktemp("big") / "project"
    root.mkdir()
    view_server.generate(root, 10_000, env)
    ensure_front_end()
    server = Server(Project(root, env))
    context, visit = open_visit(browser, server)
    yield visit
    context.close()
    server.stop()
    assert visit.offsite() == [] and visit.dialogs == [] and visit.errors == []
