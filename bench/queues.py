"""Queue throughput: 50 trivial experiments queued, then run by one worker.

Three columns, each in its own fresh repository with the same one-stage pipeline as
overhead.py: tether's embedded queue (SQLite), tether on Celery+Redis (a private
redis-server on a free loopback port, started and stopped here; `.tether/config.yaml`
sets `queue.backend: celery` and the broker, which is also the state store), and
`dvc exp run --queue` + `dvc queue start -j 1`.

Measured per tool:
- enqueue, one command per entry (`tether run --queue -S lr=X` / `dvc exp run --queue
  -S lr=X`): seconds per entry (median and mean of the 50 invocations);
- tether also enqueues the 50 as one sweep (`-S lr=v1,...,v50`): total / 50;
- end to end: from starting the worker until all 50 experiments are recorded
  (polling `git for-each-ref` every 0.2 s), divided by 50 (tether: `tether worker
  --exit-when-idle`; dvc: `dvc queue start -j 1`); for tether also the time until the
  worker has exited (run_total_s: the Celery worker's idle check takes 5 to 10 s more).

    python bench/queues.py [--n 50] [--tether PATH] [--dvc PATH] [--skip-dvc] [--skip-celery]

Results: a markdown table on stdout and JSON in bench/results/queue.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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
    tail,
    tool_version,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "queue.json"
RUN_TIMEOUT = 1800
POLL_S = 0.2
LABELS = {"tether": "tether (embedded)", "tether-celery": "tether (celery+redis)", "dvc": "dvc"}
CELERY_CONFIG = """\
queue:
  backend: celery
  broker: {url}
"""


def lrs(n: int, offset: int) -> list[float]:
    return [round(BASE_LR + (offset + i) * 1e-4, 6) for i in range(n)]


def timed(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    run_checked(argv, cwd, env, what)
    return time.perf_counter() - start


def count_refs(repo: Path, env: dict[str, str], prefix: str, skip: str = "") -> int:
    out = run_checked(["git", "for-each-ref", "--format=%(refname)", prefix], repo, env, "refs")
    return sum(1 for line in out.splitlines() if line and not (skip and line.startswith(skip)))


def wait_recorded(repo: Path, env: dict[str, str], prefix: str, n: int, start: float,
                  skip: str = "", worker: subprocess.Popen[bytes] | None = None,
                  ) -> tuple[int, float]:
    """Poll until `n` experiment refs exist (or `worker` exits): (how many, seconds)."""
    while True:
        exited = worker is not None and worker.poll() is not None
        recorded = count_refs(repo, env, prefix, skip)
        if recorded >= n or exited or time.perf_counter() > start + RUN_TIMEOUT:
            return recorded, time.perf_counter() - start
        time.sleep(POLL_S)


def bench_tether(scratch: Path, env: dict[str, str], tether: Path, n: int,
                 name: str = "tether", config: str | None = None) -> dict[str, object]:
    """tether's queue in `scratch/name`; `config`: the `.tether/config.yaml` to commit."""
    repo = scratch / name
    make_repo(repo, env, {"train.py": TRAIN_PY, "params.yaml": f"lr: {BASE_LR}\n",
                          "tether.yaml": TETHER_YAML})
    if config is not None:
        (repo / ".tether").mkdir()
        (repo / ".tether" / "config.yaml").write_text(config)
    commit_all(repo, env)
    per_entry = [timed([str(tether), "run", "--queue", "-S", f"lr={lr!r}"], repo, env,
                       f"{name} enqueue") for lr in lrs(n, 0)]
    sweep_total = timed([str(tether), "run", "--queue", "-S",
                         "lr=" + ",".join(repr(lr) for lr in lrs(n, n))], repo, env,
                        f"{name} sweep enqueue")
    # Run the per-entry batch alone first: one worker, exactly n entries.
    run_checked([str(tether), "queue", "kill", *_ids(repo, env, tether)[n:]], repo, env, "hold")
    argv = [str(tether), "worker", "--exit-when-idle"]
    log = scratch / f"{name}-worker.log"
    with open(log, "wb") as out:
        start = time.perf_counter()
        worker = subprocess.Popen(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            _, recorded_total = wait_recorded(repo, env, "refs/tether/exps/", n, start,
                                              worker=worker)
            code = worker.wait(max(1.0, start + RUN_TIMEOUT - time.perf_counter()))
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        run_total = time.perf_counter() - start
    if code != 0:
        raise BenchSetupError(f"{name} worker: {' '.join(argv)} "
                              f"{'timed out' if code is None else f'exited {code}'}\n"
                              f"{tail(log.read_text(errors='replace').strip())}")
    return {
        "version": tool_version([str(tether), "--version"], env),
        "enqueue_per_entry_median_s": statistics.median(per_entry),
        "enqueue_per_entry_mean_s": statistics.fmean(per_entry),
        "enqueue_sweep_total_s": sweep_total,
        "enqueue_sweep_per_entry_s": sweep_total / n,
        "recorded_total_s": recorded_total,
        "end_to_end_per_experiment_s": recorded_total / n,
        "run_total_s": run_total,
        "recorded": count_refs(repo, env, "refs/tether/exps/"),
        "enqueue_samples_s": per_entry,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, data in `folder`; yields its URL.

    Never the machine's shared 127.0.0.1:6379. Append-only file, fsync every second
    (Redis' recommended durability); stopped with SIGTERM at the end.
    """
    server = shutil.which("redis-server")
    if server is None:
        raise BenchSetupError("redis-server is not on PATH: install it (e.g. apt-get "
                              "install redis-server) or pass --skip-celery")
    folder.mkdir()
    port = free_port()
    log = folder / "redis.log"
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--daemonize", "no", "--logfile", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise BenchSetupError(f"redis-server on port {port} did not start "
                                      f"(exit {proc.poll()})\n{tail(text.strip())}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_celery(scratch: Path, env: dict[str, str], tether: Path, n: int) -> dict[str, object]:
    """bench_tether on the Celery backend, broker and state in a private redis-server."""
    with private_redis(scratch / "redis") as url:
        result = bench_tether(scratch, env, tether, n, name="tether-celery",
                              config=CELERY_CONFIG.format(url=url))
    return {**result, "broker": "redis (private redis-server, appendonly, fsync everysec)"}


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
    recorded, run_total = wait_recorded(repo, env, "refs/exps/", n, start,
                                        skip="refs/exps/celery")
    subprocess.run([str(dvc), "queue", "stop"], cwd=repo, env=env, capture_output=True,
                   timeout=300, check=False)
    return {
        "version": tool_version([str(dvc), "--version"], env),
        "enqueue_per_entry_median_s": statistics.median(per_entry),
        "enqueue_per_entry_mean_s": statistics.fmean(per_entry),
        "recorded_total_s": run_total,
        "end_to_end_per_experiment_s": run_total / n,
        "run_total_s": run_total,
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
        lines.append(f"| {LABELS.get(name, name)} | {ms(r.get('enqueue_per_entry_median_s'))} "
                     f"| {ms(r.get('enqueue_sweep_per_entry_s'))} "
                     f"| {ms(r.get('end_to_end_per_experiment_s'))} | {r.get('recorded', '-')} |")
    exits = [f"{LABELS.get(name, name)} {float(r['run_total_s']):.1f} s"  # type: ignore[arg-type]
             for name, r in results.items() if name != "dvc" and "run_total_s" in r]
    if exits:
        lines += ["", f"`tether worker --exit-when-idle` exited after: {', '.join(exits)}"]
    lines += [f"\n{LABELS.get(name, name)}: not measured: {r['error']}"
              for name, r in results.items() if "error" in r]
    d = results.get("dvc", {})
    ratios = []
    for name in ("tether", "tether-celery"):
        t = results.get(name, {})
        if "error" in t or "error" in d or not t or not d:
            continue
        enqueue = float(d["enqueue_per_entry_median_s"]) / float(  # type: ignore[arg-type]
            t["enqueue_per_entry_median_s"])  # type: ignore[arg-type]
        run = float(d["end_to_end_per_experiment_s"]) / float(  # type: ignore[arg-type]
            t["end_to_end_per_experiment_s"])  # type: ignore[arg-type]
        ratios.append(f"dvc / {LABELS[name]}: enqueue {enqueue:.1f}x, end to end {run:.1f}x")
    if ratios:
        lines += ["", *ratios]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--tether", type=Path, default=DEFAULT_TETHER)
    parser.add_argument("--dvc", type=Path, default=None)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--skip-celery", action="store_true",
                        help="leave out tether on Celery+Redis")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="tether-bench-queue-") as tmp:
        scratch = Path(tmp)
        env = clean_environment(scratch)
        runs = {"tether": lambda: bench_tether(scratch, env, args.tether, args.n)}
        if not args.skip_celery:
            runs["tether-celery"] = lambda: bench_celery(scratch, env, args.tether, args.n)
        if not args.skip_dvc:
            runs["dvc"] = lambda: bench_dvc(scratch, env, ensure_dvc(args.dvc), args.n)
        for name, run in runs.items():
            try:
                results[name] = run()
            except BenchSetupError as exc:
                results[name] = {"error": str(exc)}
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
