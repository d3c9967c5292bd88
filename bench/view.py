"""Time `tether view` in headless Chromium, next to the MLflow UI on the same kind of runs.

For each --n (default 10,000 and 100,000) a repository gets that many recorded experiments
over 10 baselines (bench/view_server.py's one `git fast-import` stream), `tether view
--port 0` starts, and we time:

- server ready: from spawning `tether view` to its first `/api/experiments` answer;
- table first paint: a fresh browser page opened on `#/` until the first rows are painted
  (the page's `tether:table-painted` mark, and the wall clock seen by Playwright);
- sort and filter (at the smallest n): a click on a column header / Enter in the filter
  box until the re-sorted or re-filtered rows are painted, measured inside the page;
- compare: --compare-runs experiments recorded by real `tether run`s, each logging
  --compare-steps steps with `tether.log`; `#/compare` opened until every chart is drawn
  (`tether:compare-painted`).

MLflow: a private venv bench/.venv-mlflow (created here with pip; never the project's),
--mlflow-n runs logged with the same params, metrics and step metric into a SQLite store,
`mlflow server` started, and its experiment page timed until the first run row shows.
Medians of --repeat (≥ 5) fresh pages each.

    .venv/bin/python bench/view.py [--n 10000 --n 100000] [--repeat 5] [--mlflow-n 1000]
                                   [--no-mlflow] [--compare-runs 20] [--compare-steps 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "view.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
sys.path.insert(0, str(BENCH_DIR))
import view_server  # noqa: E402

COMPARE_SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.seed, train.steps]
metrics:
  loss: {direction: min}
"""
COMPARE_TRAIN = """\
import tether
p = tether.params()["train"]
rate = 1 + p["seed"] / 7
for step in range(p["steps"]):
    tether.log(step=step, loss=1 / (1 + rate * step / 1000) + (step * 7919 % 13) / 1300)
"""

# In-page timers: the action, then wait until the table says it has painted again.
TIMED_ACTION_JS = """async ([kind, value]) => {
  const before = Number(document.body.dataset.tableRenders || 0);
  const start = performance.now();
  if (kind === 'sort') document.querySelector(`.th[data-key="${value}"]`).click();
  else {
    const box = document.querySelector('input.filter');
    box.value = value;
    box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
  }
  while (Number(document.body.dataset.tableRenders || 0) === before)
    await new Promise((resolve) => setTimeout(resolve, 1));
  return performance.now() - start;
}"""
MARK_JS = "(name) => performance.getEntriesByName(name)[0]?.startTime ?? null"


def summarize(samples: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples_s": samples}


def bench_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                        os.environ.get("PYTHONPATH")])))
    return env


def make_repo(root: Path, env: dict[str, str], count: int) -> float:
    """A repository with `count` recorded experiments; seconds it took."""
    start = time.perf_counter()
    root.mkdir(parents=True)
    view_server.generate(root, count, env)
    return time.perf_counter() - start


def make_compare_repo(root: Path, env: dict[str, str], runs: int, steps: int) -> float:
    """`runs` experiments cmp-00… by real `tether run`s logging `steps` steps each."""
    start = time.perf_counter()
    root.mkdir(parents=True)
    (root / "tether.yaml").write_text(COMPARE_SPEC)
    (root / "train.py").write_text(COMPARE_TRAIN)
    (root / "params.yaml").write_text(f"train:\n  seed: 0\n  steps: {steps}\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *argv], cwd=root, env=env, check=True)
    for i in range(runs):
        subprocess.run([sys.executable, "-m", "tether", "run", "-n", f"cmp-{i:02d}",
                        "-S", f"train.seed={i}"], cwd=root, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def wait_http(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def tether_view(root: Path, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """`tether view --port 0`: its URL and the seconds until it answered /api/experiments."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tether", "view", "--port", "0", "--no-open"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            match = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if match:
                url = match.group(0)
                break
        if not url:
            raise RuntimeError("tether view printed no URL")
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        wait_http(url + "api/experiments?limit=1")
        yield url, time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(30)


def fresh_page(browser: Any, url: str, ready: Callable[[Any], None]) -> tuple[Any, Any, float]:
    """A new context's page opened on `url`; wall seconds until `ready(page)` returned."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url)
    ready(page)
    return context, page, time.perf_counter() - start


def table_ready(page: Any) -> None:
    page.wait_for_function("() => document.body.dataset.tableRenders", timeout=120_000)


def bench_table(browser: Any, url: str, repeat: int, actions: bool) -> dict[str, Any]:
    marks, walls, sorts, filters = [], [], [], []
    for i in range(repeat):
        context, page, wall = fresh_page(browser, url + "#/", table_ready)
        walls.append(wall)
        marks.append(page.evaluate(MARK_JS, "tether:table-painted") / 1000)
        if actions:
            key = ("metric:acc", "param:train.lr", "name", "created", "duration")[i % 5]
            sorts.append(page.evaluate(TIMED_ACTION_JS, ["sort", key]) / 1000)
            expr = f"metrics.acc > 0.{6 + i % 3} and status == 'success'"
            filters.append(page.evaluate(TIMED_ACTION_JS, ["filter", expr]) / 1000)
        context.close()
    result = {"first_paint": summarize(marks), "first_paint_wall": summarize(walls)}
    if actions:
        result.update(sort=summarize(sorts), filter=summarize(filters))
    return result


def bench_compare(browser: Any, root: Path, env: dict[str, str], runs: int, steps: int,
                  repeat: int) -> dict[str, Any]:
    generate_s = make_compare_repo(root, env, runs, steps)
    names = ",".join(f"cmp-{i:02d}" for i in range(runs))
    # What the runs left in .tether/view (their step columns): each trial starts from it,
    # with a new `tether view`, so its first opening is the first compare after the runs.
    kept = root.parent / "view-after-runs"
    view_dir = root / ".tether" / "view"
    shutil.copytree(view_dir, kept)
    firsts, marks, walls = [], [], []
    for _ in range(repeat):
        shutil.rmtree(view_dir)
        shutil.copytree(kept, view_dir)
        with tether_view(root, env) as (url, _):
            # The first opening downsamples the kept columns; the second reuses its answers.
            for opening in range(2):
                context, page, wall = fresh_page(
                    browser, f"{url}#/compare?names={names}",
                    lambda page: page.wait_for_function(
                        "() => document.body.dataset.compareReady", timeout=300_000))
                series = page.evaluate("() => document.querySelector('.chart')?.dataset.series")
                assert series == str(runs), series
                mark = page.evaluate(MARK_JS, "tether:compare-painted") / 1000
                if opening == 0:
                    firsts.append(mark)
                else:
                    marks.append(mark)
                    walls.append(wall)
                context.close()
    return {"runs": runs, "steps": steps, "generate_s": generate_s,
            "first_open": summarize(firsts), "rendered": summarize(marks),
            "rendered_wall": summarize(walls)}


MLFLOW_LOG = """
import sys, time
import mlflow
from mlflow.entities import Metric, Param
count, uri = int(sys.argv[1]), sys.argv[2]
mlflow.set_tracking_uri(uri)
experiment = mlflow.set_experiment("bench")
client = mlflow.MlflowClient()
now = int(time.time() * 1000)
for i in range(count):
    lr = round(0.001 * (1 + i % 97), 6)
    acc = round(0.5 + (i * 7919 % 1000) / 2000, 6)
    run = client.create_run(experiment.experiment_id, start_time=now - (count - i) * 1000,
                            tags={"mlflow.runName": f"run-{i:06d}"})
    metrics = [Metric("acc", acc, now, 0), Metric("loss", round(1 - acc, 6), now, 0)]
    client.log_batch(run.info.run_id, metrics=metrics,
                     params=[Param("train.lr", str(lr)), Param("train.epochs", str(5 + i % 3)),
                             Param("train.seed", "0")])
    client.set_terminated(run.info.run_id, "FINISHED" if i % 10 else "FAILED",
                          end_time=now - (count - i) * 1000 + 3500)
print(experiment.experiment_id)
"""


def mlflow_python() -> Path:
    """The private venv's python, with mlflow installed by pip on first use."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3", "-m", "venv",
                        str(MLFLOW_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import mlflow"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow"], check=True)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_mlflow(browser: Any, scratch: Path, count: int, repeat: int) -> dict[str, Any]:
    python = mlflow_python()
    version = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    store = f"sqlite:///{scratch / 'mlflow.db'}"
    start = time.perf_counter()
    experiment_id = subprocess.run([str(python), "-c", MLFLOW_LOG, str(count), store],
                                   capture_output=True, text=True, check=True,
                                   cwd=scratch).stdout.split()[-1]
    log_s = time.perf_counter() - start
    port = free_port()
    server = subprocess.Popen([str(python), "-m", "mlflow", "server", "--backend-store-uri", store,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls = []
    newest = f"run-{count - 1:06d}"
    try:
        start = time.perf_counter()
        wait_http(f"http://127.0.0.1:{port}/health")
        ready_s = time.perf_counter() - start
        url = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"  # its runs table
        for _ in range(repeat):
            context, _page, wall = fresh_page(
                browser, url,
                lambda page: page.get_by_text(newest, exact=True).first.wait_for(timeout=300_000))
            walls.append(wall)
            context.close()
    finally:
        server.terminate()
        server.wait(30)
    return {"version": version, "runs": count, "log_s": log_s, "server_ready_s": ready_s,
            "first_paint_wall": summarize(walls)}


def bench_sizes(browser: Any, scratch: Path, env: dict[str, str], sizes: list[int],
                repeat: int) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        print(f"tether view: {n} experiments...", file=sys.stderr)
        root = scratch / f"tether-{n}"
        generate_s = make_repo(root, env, n)
        ready = []
        for _ in range(repeat):
            with tether_view(root, env) as (_url, ready_s):
                ready.append(ready_s)
        with tether_view(root, env) as (url, _ready_s):
            table = bench_table(browser, url, repeat, actions=n == min(sizes))
        results.append({"experiments": n, "generate_s": generate_s,
                        "server_ready": summarize(ready), **table})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="experiments (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare-runs", type=int, default=20)
    parser.add_argument("--compare-steps", type=int, default=100_000)
    parser.add_argument("--mlflow-n", type=int, default=1000)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="tether-bench-view-"))
    env = bench_env(scratch)
    results: dict[str, Any] = {
        "benchmark": "view", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "repeat": args.repeat,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
    }
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            results["tether"] = bench_sizes(browser, scratch, env, args.n or [10_000, 100_000],
                                            args.repeat)
            print("tether view: compare...", file=sys.stderr)
            results["compare"] = bench_compare(browser, scratch / "compare", env,
                                               args.compare_runs, args.compare_steps, args.repeat)
            if not args.no_mlflow:
                print(f"mlflow: {args.mlflow_n} runs...", file=sys.stderr)
                results["mlflow"] = bench_mlflow(browser, scratch, args.mlflow_n, args.repeat)
            browser.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    return 0


def render(results: dict[str, Any]) -> str:
    def ms(stats: dict[str, Any]) -> str:
        return f"{stats['median_s'] * 1000:.0f} ms"

    lines = ["| measure | experiments | median |", "|---|---|---|"]
    for row in results["tether"]:
        n = f"{row['experiments']:,}"
        lines.append(f"| tether view: server ready | {n} | {ms(row['server_ready'])} |")
        lines.append(f"| tether view: table first paint (mark) | {n} | {ms(row['first_paint'])} |")
        lines.append(f"| tether view: table first paint (wall) | {n} "
                     f"| {ms(row['first_paint_wall'])} |")
        for action in ("sort", "filter"):
            if action in row:
                lines.append(f"| tether view: {action} | {n} | {ms(row[action])} |")
    cmp = results["compare"]
    lines.append(f"| tether view: compare {cmp['runs']} runs × {cmp['steps']:,} steps rendered "
                 f"| {cmp['runs']} | {ms(cmp['rendered'])} |")
    lines.append(f"| tether view: the same, first open after the runs (new viewer each) "
                 f"| {cmp['runs']} | {ms(cmp['first_open'])} |")
    mlflow = results.get("mlflow")
    if mlflow:
        first = results["tether"][0]
        ratio = mlflow["first_paint_wall"]["median_s"] / first["first_paint_wall"]["median_s"]
        lines.append(f"| MLflow {mlflow['version']} UI: runs table first paint (wall) "
                     f"| {mlflow['runs']:,} | {ms(mlflow['first_paint_wall'])} |")
        lines.append(f"\nMLflow on {mlflow['runs']:,} runs / tether on "
                     f"{first['experiments']:,} experiments, first paint: {ratio:.1f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
