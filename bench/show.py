"""Time `tether show --json` over many recorded experiments, next to `dvc exp show --json`.

Experiments are made through tether's own recording path: a `RunRecord` per
experiment, committed with the workspace by `record_commit` (as `tether run`
records, one `git status` and one `git fast-import` each). Then `tether show
--json` is timed with a warm index and after deleting `.tether/index.db`.

If bench/.venv-dvc/bin/dvc exists, a DVC repository with the equivalent trivial
pipeline gets --dvc-n experiments (`dvc exp run -S lr=X`, one by one) and
`dvc exp show --json` is timed the same way.

    python bench/show.py [--n 1000 --n 10000] [--repeat 5] [--dvc-n 300] [--no-dvc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_TETHER = REPO_ROOT / ".venv" / "bin" / "tether"
DEFAULT_DVC = BENCH_DIR / ".venv-dvc" / "bin" / "dvc"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "show.json"

SPEC_METRICS = {
    "acc": {"direction": "max", "tolerance": {"kind": "abs", "value": 0.0}},
    "loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.0}},
}


def generate_experiments(root: Path, count: int, *, start: int = 0) -> list[str]:
    """Record `count` successful experiments against HEAD of `root`; their refs."""
    from tether.gitstore.fastrecord import record_commit
    from tether.gitstore.git import Git, ident_of
    from tether.layout import RECORD_PATH, tmp_dir
    from tether.record.environment import capture_environment
    from tether.record.record import RunRecord, StageRecord

    git = Git(root)
    baseline = git.head_commit()
    ident = ident_of(git.run("var", "GIT_COMMITTER_IDENT", check=False))
    environment = capture_environment(os.environ)
    born = time.time() - count
    tmp_dir(root).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=tmp_dir(root)))
    files = {RECORD_PATH: scratch / "record.json"}
    try:
        refs = []
        for i in range(start, start + count):
            lr = round(0.001 * (1 + i % 97), 6)
            acc = round(0.5 + (i * 7919 % 1000) / 2000, 6)
            created = born + (i - start)
            name = f"exp-{i:05d}"
            status = "success" if i % 10 else "failed"
            record = RunRecord(
                id=f"run-{i:05d}", name=name, message=f"lr sweep {i}", baseline=baseline,
                branch="main", kind="pipeline", status=status,
                exit_code=0 if i % 10 else 1, created_at=created, started_at=created,
                ended_at=created + 3.5, duration=3.5, argv=["tether", "run", "-S", f"lr={lr}"],
                targets=[], overrides=[f"train.lr={lr}"],
                params={"params.yaml": {"train": {"lr": lr, "epochs": 5 + i % 3, "seed": 0}}},
                metrics={"acc": acc, "loss": round(1 - acc, 6)},
                steps={"train": [{"step": s, "loss": 1 / (s + 1)} for s in range(5)]},
                stages=[StageRecord(name="train", status="success", cmd=["python", "train.py"],
                                    exit_code=0, started_at=created, ended_at=created + 3.5,
                                    duration=3.5)],
                code={"commit": baseline, "dirty": False}, environment=environment,
                spec={"stages": {"train": {"cmd": ["python", "train.py"]}},
                      "metrics": SPEC_METRICS},
            )
            (scratch / "record.json").write_text(record.dumps())
            exp = record_commit(git, root, baseline=baseline, name=name,
                                message=f"tether: {name} ({status})\n", ident=ident,
                                run_id=record.id, extra_files=lambda _: files,
                                scratch=tmp_dir(root))
            refs.append(exp.ref)
        return refs
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


CPU_SAMPLES: list[float] = []  # user+sys seconds of each timed process tree, in order


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of one run; its CPU seconds go to CPU_SAMPLES."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SAMPLES.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def summarize(samples: list[float]) -> dict[str, Any]:
    """Wall-clock statistics, plus the median CPU time of the same runs."""
    cpu = CPU_SAMPLES[-len(samples):]
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples_s": samples, "cpu_median_s": statistics.median(cpu),
            "cpu_samples_s": cpu}


def bench_tether(n: int, repeat: int, tether: Path, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        root.mkdir()
        for argv in (["git", "init", "-q", "-b", "main"],
                     ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
            subprocess.run(argv, cwd=root, env=env, check=True)
        (root / "params.yaml").write_text("train:\n  lr: 0.001\n  epochs: 5\n  seed: 0\n")
        subprocess.run(["git", "add", "-A"], cwd=root, env=env, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "params"], cwd=root, env=env, check=True)
        started = time.perf_counter()
        generate_experiments(root, n)
        generate_s = time.perf_counter() - started
        argv = [str(tether), "show", "--json"]
        index = root / ".tether" / "index.db"
        cold = []
        for _ in range(max(1, repeat // 2)):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{index}{suffix}").unlink(missing_ok=True)
            cold.append(timed(argv, root, env)[0])
        cold_summary = summarize(cold)
        warm = []
        for _ in range(repeat):
            elapsed, out = timed(argv, root, env)
            warm.append(elapsed)
        shown = len(json.loads(out))
        if shown != n:
            raise RuntimeError(f"tether show listed {shown} experiments, expected {n}")
        return {"experiments": n, "generate_s": generate_s, "warm": summarize(warm),
                "cold": cold_summary}


def prepare_dvc(root: Path, n: int, dvc: Path, env: dict[str, str]) -> float:
    """A DVC repo with the trivial pipeline of overhead.py and `n` experiments (reused)."""
    sys.path.insert(0, str(BENCH_DIR))
    from overhead import DVC_YAML, TRAIN_PY

    done_marker = root / f".bench-{n}-done"
    if done_marker.exists():
        return float(done_marker.read_text())
    if (root / ".dvc").is_dir():  # resume an interrupted preparation
        made = len(subprocess.run(["git", "for-each-ref", "refs/exps"], cwd=root, env=env,
                                  capture_output=True, text=True).stdout.splitlines())
        return _dvc_experiments(root, made, n, dvc, env)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for argv in (["git", "init", "-q", "-b", "main"], [str(dvc), "init", "-q"]):
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)
    (root / "train.py").write_text(TRAIN_PY)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("lr: 0.1\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "start"]):
        subprocess.run(argv, cwd=root, env=env, check=True)
    return _dvc_experiments(root, 0, n, dvc, env)


def _dvc_experiments(root: Path, start: int, n: int, dvc: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    for i in range(start, n):
        subprocess.run([str(dvc), "exp", "run", "-q", "-S", f"lr={0.0001 * (i + 1):.6f}"],
                       cwd=root, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    (root / f".bench-{n}-done").write_text(str(elapsed))
    return elapsed


def bench_dvc(n: int, repeat: int, dvc: Path, env: dict[str, str], repo: Path) -> dict[str, Any]:
    generate_s = prepare_dvc(repo, n, dvc, env)
    argv = [str(dvc), "exp", "show", "--json"]
    samples = [timed(argv, repo, env)[0] for _ in range(repeat)]
    return {"experiments": n, "generate_s": generate_s, "warm": summarize(samples)}


def bench_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n")
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", DVC_NO_ANALYTICS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    bin_dir = scratch / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="experiments (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tether", type=Path, default=DEFAULT_TETHER)
    parser.add_argument("--dvc", type=Path, default=DEFAULT_DVC)
    parser.add_argument("--dvc-n", type=int, default=300)
    parser.add_argument("--dvc-repo", type=Path, default=None,
                        help="where to build (or reuse) the DVC repository")
    parser.add_argument("--no-dvc", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    sizes = args.n or [1000]
    scratch = Path(tempfile.mkdtemp(prefix="tether-bench-show-"))
    env = bench_env(scratch)
    results: dict[str, Any] = {
        "benchmark": "show", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "repeat": args.repeat,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "tether": [], "dvc": None,
    }
    try:
        for n in sizes:
            print(f"tether: {n} experiments...", file=sys.stderr)
            results["tether"].append(bench_tether(n, args.repeat, args.tether, env))
        if not args.no_dvc and args.dvc.exists():
            print(f"dvc: {args.dvc_n} experiments...", file=sys.stderr)
            repo = args.dvc_repo or scratch / "dvc-project"
            results["dvc"] = bench_dvc(args.dvc_n, args.repeat, args.dvc, env, repo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    return 0


def render(results: dict[str, Any]) -> str:
    lines = ["| tool | experiments | warm median (CPU) | cold median, no index (CPU)"
             " | per 1k exps (warm) |", "|---|---:|---:|---:|---:|"]

    def ms(stats: dict[str, Any]) -> str:
        return f"{stats['median_s']*1000:.0f} ms ({stats['cpu_median_s']*1000:.0f} ms)"

    for row in results["tether"]:
        lines.append(
            f"| tether show --json | {row['experiments']} | {ms(row['warm'])}"
            f" | {ms(row['cold'])}"
            f" | {row['warm']['median_s']*1e6/row['experiments']:.0f} ms |")
    dvc = results["dvc"]
    if dvc:
        lines.append(
            f"| dvc exp show --json | {dvc['experiments']} | {ms(dvc['warm'])}"
            f" | - | {dvc['warm']['median_s']*1e6/dvc['experiments']:.0f} ms |")
        for row in results["tether"]:
            ratio = dvc["warm"]["median_s"] / row["warm"]["median_s"]
            lines.append(f"\ndvc ({dvc['experiments']} exps) / tether ({row['experiments']} exps)"
                         f" warm: {ratio:.1f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
