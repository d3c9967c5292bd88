"""Time the viewer's server (`tether view`) over 10,000 and 100,000 recorded experiments.

Experiments are written quickly, the way `gitstore/fastimport.py` writes them: one
`git fast-import` stream makes every experiment commit (a valid `.tether/record.json`
on top of its baseline) and its ref under `refs/tether/exps/<baseline>/<name>`, spread
over 10 baseline commits. The index (`.tether/index.db`) is then built once from the
refs (`tether show -A --json`, timed as "index build"), as it is the first time any
command reads them. Each round then starts `tether view --port 0 --no-open` and times:

- ready: process start to the first `/api/session` answer;
- first page: `/api/experiments?limit=200` right after (the index read into memory);
- sort: `sort=metric:acc&order=desc` (a new selection: the whole set sorted);
- filter: `filter=metrics.acc > 0.9 and params.train.epochs == 6` (a new selection);
- page: `offset=5000` of that filter (cached selection: slicing only).

    python bench/view_server.py [--n 10000 --n 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "view_server.json"
BASELINES = 10
REQUESTS = {
    "first_page": "/api/experiments?limit=200",
    "sort": "/api/experiments?limit=200&sort=metric:acc&order=desc",
    "filter": "/api/experiments?limit=200&filter=metrics.acc%20%3E%200.9%20and%20"
              "params.train.epochs%20%3D%3D%206",
    "page": "/api/experiments?limit=200&offset=5000&filter=metrics.acc%20%3E%200.9%20and%20"
            "params.train.epochs%20%3D%3D%206",
}


def _record(template: dict[str, Any], i: int, baseline: str) -> bytes:
    lr = round(0.001 * (1 + i % 97), 6)
    acc = round(0.5 + (i * 7919 % 1000) / 2000, 6)
    record = dict(template, id=f"run-{i:06d}", name=f"exp-{i:06d}", baseline=baseline,
                  message=f"lr sweep {i}", status="success" if i % 10 else "failed",
                  created_at=1.7e9 + i, started_at=1.7e9 + i, ended_at=1.7e9 + i + 3.5,
                  params={"params.yaml": {"train": {"lr": lr, "epochs": 5 + i % 3}}},
                  metrics={"acc": acc, "loss": round(1 - acc, 6)})
    return json.dumps(record).encode()


def _template() -> dict[str, Any]:
    from tether.record.record import RunRecord, StageRecord

    record = RunRecord(
        id="x", name="x", message="", baseline="x", branch="main", kind="pipeline",
        status="success", exit_code=0, created_at=0.0, started_at=0.0, ended_at=3.5,
        duration=3.5, argv=["tether", "run"], targets=[], overrides=[], params={},
        metrics={}, steps={"train": [{"step": s, "loss": 1 / (s + 1)} for s in range(5)]},
        stages=[StageRecord(name="train", status="success", cmd=["python", "train.py"],
                            exit_code=0, duration=3.5)],
        code={"commit": "x", "dirty": False}, environment={"python": sys.version},
        spec={"stages": {"train": {"cmd": ["python", "train.py"]}},
              "metrics": {"acc": {"direction": "max"}, "loss": {"direction": "min"}}},
    )
    template: dict[str, Any] = record.to_json()
    return template


def generate(root: Path, count: int, env: dict[str, str]) -> None:
    """`count` experiments over BASELINES commits, in one fast-import stream."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=root, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    baselines = []
    for b in range(BASELINES):
        git("commit", "-q", "--allow-empty", "-m", f"baseline {b}")
        baselines.append(git("rev-parse", "HEAD"))
    template = _template()
    ident = "Bench <bench@example.com> 1700000000 +0000"
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=root, env=env,
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for i in range(count):
        baseline = baselines[i % BASELINES]
        blob = _record(template, i, baseline)
        message = f"tether: exp-{i:06d}\n".encode()
        proc.stdin.write(
            f"commit refs/tether/exps/{baseline}/exp-{i:06d}\ncommitter {ident}\n"
            f"data {len(message)}\n".encode() + message
            + f"from {baseline}\nM 100644 inline .tether/record.json\ndata {len(blob)}\n"
              .encode() + blob + b"\n")
    proc.stdin.write(b"done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    git("pack-refs", "--all")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        body: bytes = response.read()
        return body


def one_round(root: Path, env: dict[str, str]) -> dict[str, float]:
    """Start `tether view`, time readiness and the requests, stop it."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tether", "view", "--port", "0",
                             "--no-open"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"tether view did not start: {line}{proc.communicate()[1]}")
        base = line[line.index("http://"):].split()[0].rstrip("/")
        while True:
            try:
                _get(base + "/api/session")
                break
            except OSError:
                time.sleep(0.01)
        timings = {"ready": time.perf_counter() - started}
        for label, path in REQUESTS.items():
            begin = time.perf_counter()
            json.loads(_get(base + path))
            timings[label] = time.perf_counter() - begin
        return timings
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench(count: int, repeat: int, env: dict[str, str], keep: Path | None = None
          ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = (keep or Path(scratch)) / f"project-{count}"
        generated = 0.0
        if not (root / ".git").is_dir():  # --keep: generated once, timed again and again
            root.mkdir(parents=True)
            begin = time.perf_counter()
            generate(root, count, env)
            generated = time.perf_counter() - begin
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tether", "show", "-A", "--json"], cwd=root,
                       env=env, check=True, capture_output=True)
        index_build = time.perf_counter() - begin
        rounds = [one_round(root, env) for _ in range(repeat)]
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    return {"experiments": count, "generate_s": generated, "index_build_s": index_build,
            "median_s": medians, "rounds": rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, action="append", help="experiments (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep", type=Path, help="generate the projects in this folder "
                        "once and reuse them (to compare two versions on the same data)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))}
    env.update(GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com")
    results = [bench(n, args.repeat, env, args.keep) for n in args.n or [10_000, 100_000]]
    print("| experiments | index build (once) | ready | first page | sort | filter | page |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m = r["median_s"]
        print(f"| {r['experiments']:,} | {r['index_build_s']:.2f} s | {m['ready']:.2f} s | "
              + " | ".join(f"{m[k] * 1000:.0f} ms" for k in REQUESTS) + " |")
    args.output.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "repeat": args.repeat, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
