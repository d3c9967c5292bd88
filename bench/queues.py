"""Queue throughput: 50 trivial experiments queued, then run by one worker.

tether (embedded SQLite queue) against `dvc exp run --queue` + `dvc queue start -j 1`,
each in its own fresh repository with the same one-stage pipeline as overhead.py.

Measured per tool:
- enqueue, one command per entry (`tether run --queue -S lr=X` / `dvc exp run --queue
  -S lr=X`): seconds per entry (median and mean of the 50 invocations);
- tether also enqueues the 50 as one sweep (`-S lr=v1,...,v50`): total / 50;
- end to end: from starting the worker until all 50 experiments are recorded,
  divided by 50 (tether: `tether worker --exit-when-idle`; dvc: `dvc queue start -j 1`,
  then polling `git for-each-ref refs/exps` until 50 experiments exist).

    python bench/queues.py [--n 50] [--tether PATH] [--dvc PATH] [--skip-dvc]

Results: a markdown table on stdout and JSON in bench/results/queue.json.
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
from collections.abc import Sequence
from pathlib import Path

from overhead import (
    BASE_LR,
    DEFAULT_TETHER,
    DVC_YAML,
    TETHER_YAML,
    TRAIN_PY,
    BenchSetupError,
    clean_environment,
    commit_all,
    ensure_dvc,
    make_repo,
    run_checked,
    tool_version,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "queue.json"
RUN_TIMEOUT = 1800


def lrs(n: int, offset: int) -> list[float]:
    return [round(BASE_LR + (offset + i) * 1e-4, 6) for i in range(n)]


def timed(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    run_checked(argv, cwd, env, what)
    return time.perf_counter() - start


def count_refs(repo: Path, env: dict[str, str], prefix: str, skip: str = "") -> int:
    out = run_checked(["git", "for-each-ref", "--format=%(refname)", prefix], repo, env, "refs")
    return sum(1 for line in out.splitlines() if line and not (skip and line.startswith(skip)))


def bench_tether(scratch: Path, env: dict[str, str], tether: Path, n: int) -> dict[str, object]:
    repo = scratch / "tether"
    make_repo(repo, env, {"train.py": TRAIN_PY, "params.yaml": f"lr: {BASE_LR}\n",
                          "tether.yaml": TETHER_YAML})
    commit_all(repo, env)
    per_entry = [timed([str(tether), "run", "--queue", "-S", f"lr={lr!r}"], repo, env,
                       "tether enqueue") for lr in lrs(n, 0)]
    sweep_total = timed([str(tether), "run", "--queue", "-S",
                         "lr=" + ",".join(repr(lr) for lr in lrs(n, n))], repo, env,
                        "tether sweep enqueue")
    # Run the per-entry batch alone first: one worker, exactly n entries.
    run_checked([str(tether), "queue", "kill", *_ids(repo, env, tether)[n:]], repo, env, "hold")
    run_total = timed([str(tether), "worker", "--exit-when-idle"], repo, env, "tether worker")
    recorded = count_refs(repo, env, "refs/tether/exps/")
    return {
        "version": tool_version([str(tether), "--version"], env),
        "enqueue_per_entry_median_s": statistics.median(per_entry),
        "enqueue_per_entry_mean_s": statistics.fmean(per_entry),
        "enqueue_sweep_total_s": sweep_total,
        "enqueue_sweep_per_entry_s": sweep_total / n,
        "run_total_s": run_total,
        "end_to_end_per_experiment_s": run_total / n,
        "recorded": recorded,
        "enqueue_samples_s": per_entry,
    }


def _ids(repo: Path, env: dict[str, str], tether: Path) -> list[str]:
    out = run_checked([str(tether), "queue", "status", "--json"], repo, env, "status")
    return [json.loads(line)["id"] for line in out.splitlines() if line]


def bench_dvc(scratch: Path, env: dict[str, str], dvc: Path, n: int) -> dict[str, object]:
    repo = scratch / "dvc"
    # `dvc queue start` spawns its worker as plain `dvc`: it must be on PATH.
    env = {**env, "PATH": f"{dvc.parent}{os.pathsep}{env.get('PATH', '')}"}
    make_repo(repo, env, {"train.py": TRAIN_PY, "params.yaml": f"lr: {BASE_LR}\n",
                          "dvc.yaml": DVC_YAML})
    run_checked([str(dvc), "init", "-q"], repo, env, "dvc init")
    commit_all(repo, env)
    per_entry = [timed([str(dvc), "exp", "run", "--queue", "-S", f"lr={lr!r}"], repo, env,
                       "dvc enqueue") for lr in lrs(n, 0)]
    start = time.perf_counter()
    run_checked([str(dvc), "queue", "start", "-j", "1"], repo, env, "dvc queue start")
    deadline = start + RUN_TIMEOUT
    recorded = 0
    while time.perf_counter() < deadline:
        recorded = count_refs(repo, env, "refs/exps/", skip="refs/exps/celery")
        if recorded >= n:
            break
        time.sleep(0.2)
    run_total = time.perf_counter() - start
    subprocess.run([str(dvc), "queue", "stop"], cwd=repo, env=env, capture_output=True,
                   timeout=300, check=False)
    return {
        "version": tool_version([str(dvc), "--version"], env),
        "enqueue_per_entry_median_s": statistics.median(per_entry),
        "enqueue_per_entry_mean_s": statistics.fmean(per_entry),
        "run_total_s": run_total,
        "end_to_end_per_experiment_s": run_total / n,
        "recorded": recorded,
        "enqueue_samples_s": per_entry,
    }


def markdown(results: dict[str, dict[str, object]], n: int) -> str:
    def ms(value: object) -> str:
        return f"{float(value) * 1000:.0f} ms" if isinstance(value, float) else "-"

    lines = [f"{n} trivial experiments, one worker",
             "", "| tool | enqueue / entry (median) | enqueue / entry (one sweep) "
             "| end to end / experiment | recorded |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {ms(r.get('enqueue_per_entry_median_s'))} "
                     f"| {ms(r.get('enqueue_sweep_per_entry_s'))} "
                     f"| {ms(r.get('end_to_end_per_experiment_s'))} | {r.get('recorded')} |")
    if "tether" in results and "dvc" in results:
        t, d = results["tether"], results["dvc"]
        ratio_enqueue = float(d["enqueue_per_entry_median_s"]) / float(  # type: ignore[arg-type]
            t["enqueue_per_entry_median_s"])  # type: ignore[arg-type]
        ratio_run = float(d["end_to_end_per_experiment_s"]) / float(  # type: ignore[arg-type]
            t["end_to_end_per_experiment_s"])  # type: ignore[arg-type]
        lines += ["", f"dvc / tether: enqueue {ratio_enqueue:.1f}x, end to end {ratio_run:.1f}x"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--tether", type=Path, default=DEFAULT_TETHER)
    parser.add_argument("--dvc", type=Path, default=None)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="tether-bench-queue-") as tmp:
        scratch = Path(tmp)
        env = clean_environment(scratch)
        try:
            results["tether"] = bench_tether(scratch, env, args.tether, args.n)
        except BenchSetupError as exc:
            results["tether"] = {"error": str(exc)}
        if not args.skip_dvc:
            try:
                results["dvc"] = bench_dvc(scratch, env, ensure_dvc(args.dvc), args.n)
            except BenchSetupError as exc:
                results["dvc"] = {"error": str(exc)}
    print(markdown(results, args.n))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "queue", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "n": args.n,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "tools": results,
    }, indent=2) + "\n")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
