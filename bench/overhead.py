"""Fixed per-run overhead of `tether run` and `dvc exp run` on a trivial one-stage pipeline.

Each tool gets its own fresh git repository in one temporary directory, holding the
same `train.py` (reads `params.yaml`, writes `metrics.json`, takes ~0 s). Every
iteration sets a distinct `lr`, so no tool can skip the stage as unchanged or restore
it from a run cache. Tools run interleaved, in a rotating order, after a few warm-ups.

    python bench/overhead.py [--n 15] [--warmup 2] [--tether PATH] [--dvc PATH]

DVC is installed on first use into bench/.venv-dvc from bench/requirements-dvc.txt.
Results: a markdown table on stdout and JSON in bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_TETHER = REPO_ROOT / ".venv" / "bin" / "tether"
DVC_VENV = BENCH_DIR / ".venv-dvc"
DVC_REQUIREMENTS = BENCH_DIR / "requirements-dvc.txt"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "overhead.json"
RUN_TIMEOUT_SECONDS = 300
BASE_LR = 0.1

# Only the standard library, so the interpreter's start-up is all the stage costs.
TRAIN_PY = """\
import json

params = {}
with open("params.yaml") as stream:
    for line in stream:
        key, sep, value = line.partition(":")
        if sep:
            params[key.strip()] = float(value)
lr = params["lr"]
with open("metrics.json", "w") as stream:
    json.dump({"lr": lr, "score": 1.0 - abs(lr - 0.1)}, stream)
    stream.write("\\n")
"""

TETHER_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr]
    metrics: [metrics.json]
"""

# metrics.json is kept in git (cache: false), as tether keeps it in the experiment commit.
DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr]
    metrics:
      - metrics.json:
          cache: false
"""


class BenchSetupError(Exception):
    """A repository or tool could not be prepared; the message says which and why."""


@dataclass
class ToolResult:
    """Timings and outcome for one tool across all measured iterations."""

    name: str
    command: str
    executable: str = ""
    version: str = ""
    available: bool = True
    error: str = ""
    seconds: list[float] = field(default_factory=list)
    unverified_runs: int = 0

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.seconds)
        return {
            "median_s": statistics.median(ordered),
            "p90_s": percentile(ordered, 90),
            "min_s": ordered[0],
            "max_s": ordered[-1],
            "mean_s": statistics.fmean(ordered),
        }


@dataclass
class Tool:
    """A way of running the stage once, in its own repository."""

    name: str
    repo: Path
    argv_for: Callable[[float], list[str]]
    display: str
    prepare_run: Callable[[float], None] | None = None


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile of an already sorted, non-empty sequence."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def clean_environment(scratch: Path) -> dict[str, str]:
    """The environment every tool runs in: no leaked GIT_* variables, a scratch HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    home = scratch / "home"
    bin_dir = scratch / "bin"
    home.mkdir()
    bin_dir.mkdir()
    # `python` in the stage command resolves to this interpreter for every tool alike.
    (bin_dir / "python").symlink_to(sys.executable)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = tether bench\n\temail = bench@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_NOSYSTEM="1",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(scratch / "dvc-site-cache"),
    )
    # Bytecode caches on, as on a user's machine: warm-up runs write them for every tool.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def run_checked(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> str:
    """Run a setup command; raise BenchSetupError with its output if it fails."""
    try:
        completed = subprocess.run(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchSetupError(f"{what}: {' '.join(argv)} failed: {exc}") from exc
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise BenchSetupError(
            f"{what}: {' '.join(argv)} exited {completed.returncode}\n{tail(output)}"
        )
    return completed.stdout


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def make_repo(path: Path, env: dict[str, str], files: dict[str, str]) -> None:
    """A fresh git repository holding `files` in one initial commit."""
    path.mkdir()
    run_checked(["git", "init", "-q"], path, env, f"git init {path.name}")
    for name, text in files.items():
        (path / name).write_text(text)
    (path / ".gitignore").write_text("__pycache__/\n")


def commit_all(path: Path, env: dict[str, str]) -> None:
    run_checked(["git", "add", "-A"], path, env, f"git add in {path.name}")
    run_checked(["git", "commit", "-q", "-m", "initial"], path, env, f"commit in {path.name}")


def ensure_dvc(explicit: Path | None) -> Path:
    """Path of a dvc executable; creates bench/.venv-dvc on first use."""
    if explicit is not None:
        if not explicit.exists():
            raise BenchSetupError(f"dvc: {explicit} does not exist")
        return explicit
    dvc = DVC_VENV / "bin" / "dvc"
    if dvc.exists():
        return dvc
    print(f"creating {DVC_VENV} and installing {DVC_REQUIREMENTS.name} (one time) ...", flush=True)
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    run_checked([sys.executable, "-m", "venv", str(DVC_VENV)], BENCH_DIR, env, "dvc venv")
    run_checked(
        [str(DVC_VENV / "bin" / "pip"), "install", "-q", "-r", str(DVC_REQUIREMENTS)],
        BENCH_DIR,
        env,
        "dvc install",
    )
    if not dvc.exists():
        raise BenchSetupError(f"dvc: installed {DVC_REQUIREMENTS.name} but {dvc} is missing")
    return dvc


def tool_version(argv: Sequence[str], env: dict[str, str]) -> str:
    try:
        completed = subprocess.run(
            list(argv),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (completed.stdout or completed.stderr).strip().splitlines()
    return text[0] if completed.returncode == 0 and text else "unknown"


def write_params(repo: Path, lr: float) -> None:
    (repo / "params.yaml").write_text(f"lr: {lr!r}\n")


def metrics_lr(repo: Path) -> float | None:
    try:
        return float(json.loads((repo / "metrics.json").read_text())["lr"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def time_once(tool: Tool, lr: float, env: dict[str, str]) -> tuple[float, str | None, bool]:
    """Wall time of one run, an error message if it failed, and whether it wrote lr."""
    if tool.prepare_run is not None:
        tool.prepare_run(lr)
    argv = tool.argv_for(lr)
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            argv,
            cwd=tool.repo,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return time.perf_counter() - start, f"{' '.join(argv)} failed: {exc}", False
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        return elapsed, f"{' '.join(argv)} exited {completed.returncode}\n{tail(output)}", False
    written = metrics_lr(tool.repo)
    return elapsed, None, written is not None and abs(written - lr) < 1e-12


def build_tools(
    scratch: Path, env: dict[str, str], tether: Path, dvc_arg: Path | None
) -> tuple[list[Tool], dict[str, ToolResult]]:
    """Set up the three repositories; tools that cannot be set up are reported, not fatal."""
    base_files = {"train.py": TRAIN_PY, "params.yaml": f"lr: {BASE_LR}\n"}
    tools: list[Tool] = []
    results: dict[str, ToolResult] = {}

    plain_repo = scratch / "plain"
    make_repo(plain_repo, env, base_files)
    commit_all(plain_repo, env)
    tools.append(
        Tool(
            name="plain",
            repo=plain_repo,
            argv_for=lambda lr: ["python", "train.py"],
            display="python train.py",
            prepare_run=lambda lr: write_params(plain_repo, lr),
        )
    )
    results["plain"] = ToolResult(
        "plain", "python train.py", sys.executable, platform.python_version()
    )

    tether_repo = scratch / "tether"
    results["tether"] = ToolResult("tether", "tether run -S lr=X", str(tether))
    try:
        if not tether.exists():
            raise BenchSetupError(f"tether: {tether} does not exist (pass --tether PATH)")
        make_repo(tether_repo, env, {**base_files, "tether.yaml": TETHER_YAML})
        commit_all(tether_repo, env)
        results["tether"].version = tool_version([str(tether), "--version"], env)
        tools.append(
            Tool(
                name="tether",
                repo=tether_repo,
                argv_for=lambda lr: [str(tether), "run", "-S", f"lr={lr!r}"],
                display="tether run -S lr=X",
            )
        )
    except BenchSetupError as exc:
        results["tether"].available = False
        results["tether"].error = str(exc)

    dvc_repo = scratch / "dvc"
    results["dvc"] = ToolResult("dvc", "dvc exp run -S lr=X")
    try:
        dvc = ensure_dvc(dvc_arg)
        results["dvc"].executable = str(dvc)
        make_repo(dvc_repo, env, {**base_files, "dvc.yaml": DVC_YAML})
        run_checked([str(dvc), "init", "-q"], dvc_repo, env, "dvc init")
        commit_all(dvc_repo, env)
        results["dvc"].version = tool_version([str(dvc), "--version"], env)
        tools.append(
            Tool(
                name="dvc",
                repo=dvc_repo,
                argv_for=lambda lr: [str(dvc), "exp", "run", "-S", f"lr={lr!r}"],
                display="dvc exp run -S lr=X",
            )
        )
    except BenchSetupError as exc:
        results["dvc"].available = False
        results["dvc"].error = str(exc)

    return tools, results


def run_bench(
    tools: list[Tool], results: dict[str, ToolResult], env: dict[str, str], n: int, warmup: int
) -> None:
    """Warm up, then measure n runs per tool, rotating the order every iteration."""
    active = list(tools)
    # A distinct lr per run, shared by all tools, so no run is ever "unchanged".
    values = [round(BASE_LR + (index + 1) * 1e-4, 6) for index in range(warmup + n)]
    for index, lr in enumerate(values):
        measuring = index >= warmup
        shift = index % len(active) if active else 0
        for tool in active[shift:] + active[:shift]:
            result = results[tool.name]
            if not result.available:
                continue
            elapsed, error, verified = time_once(tool, lr, env)
            if error is not None:
                result.available = False
                result.error = error
                print(f"!! {tool.name} failed and is left out of the results:\n{error}", flush=True)
                continue
            if measuring:
                result.seconds.append(elapsed)
                result.unverified_runs += 0 if verified else 1
        label = f"run {index - warmup + 1}/{n}" if measuring else f"warm-up {index + 1}/{warmup}"
        timings = "  ".join(
            f"{name} {results[name].seconds[-1]:.3f}s"
            for name in results
            if measuring and results[name].available and results[name].seconds
        )
        print(f"{label}  {timings}".rstrip(), flush=True)
        active = [tool for tool in active if results[tool.name].available]


def report(results: dict[str, ToolResult], n: int, warmup: int) -> dict[str, object]:
    """JSON-ready results: per-tool statistics, overheads over plain, and the DVC/tether ratio."""
    plain = results["plain"]
    plain_median = statistics.median(plain.seconds) if plain.seconds else None
    tools_out: dict[str, object] = {}
    overheads: dict[str, float] = {}
    for name, result in results.items():
        entry: dict[str, object] = {
            "command": result.command,
            "executable": result.executable,
            "version": result.version,
            "available": result.available and bool(result.seconds),
            "runs": len(result.seconds),
        }
        if result.error:
            entry["error"] = result.error
        if result.seconds and result.available:
            stats = result.summary()
            entry.update(stats)
            entry["samples_s"] = result.seconds
            entry["runs_without_expected_metrics"] = result.unverified_runs
            if plain_median is not None and name != "plain":
                overheads[name] = stats["median_s"] - plain_median
                entry["overhead_s"] = overheads[name]
        tools_out[name] = entry
    ratio = None
    if "dvc" in overheads and "tether" in overheads and overheads["tether"] > 0:
        ratio = overheads["dvc"] / overheads["tether"]
    return {
        "benchmark": "overhead",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "iterations": n,
        "warmups": warmup,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "git": tool_version(["git", "--version"], dict(os.environ)),
        },
        "tools": tools_out,
        "dvc_overhead_over_tether_overhead": ratio,
    }


def markdown_table(summary: dict[str, object]) -> str:
    tools = summary["tools"]
    assert isinstance(tools, dict)
    lines = [
        "| tool | version | command | median (s) | p90 (s) | overhead vs plain (s) | runs |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, entry in tools.items():
        if entry["available"]:
            overhead = entry.get("overhead_s")
            lines.append(
                f"| {name} | {entry['version']} | `{entry['command']}` | {entry['median_s']:.3f} "
                f"| {entry['p90_s']:.3f} | "
                f"{'—' if overhead is None else f'{overhead:+.3f}'} | {entry['runs']} |"
            )
        else:
            lines.append(f"| {name} | — | unavailable | — | — | — | 0 |")
    ratio = summary["dvc_overhead_over_tether_overhead"]
    lines.append("")
    if isinstance(ratio, float):
        lines.append(f"DVC overhead / tether overhead: **{ratio:.1f}×**")
    else:
        lines.append("DVC overhead / tether overhead: not available (needs both tools)")
    for name, entry in tools.items():
        if not entry["available"]:
            lines.append(f"\n**{name} was not measured:**\n```\n{entry.get('error', '')}\n```")
        elif entry.get("runs_without_expected_metrics"):
            lines.append(
                f"\nnote: after {entry['runs_without_expected_metrics']} {name} runs the "
                "workspace metrics.json did not hold that run's lr."
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="measured runs per tool (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (default 2)")
    parser.add_argument(
        "--tether", type=Path, default=DEFAULT_TETHER, help=f"tether executable ({DEFAULT_TETHER})"
    )
    parser.add_argument(
        "--dvc", type=Path, default=None, help="dvc executable (default: bench/.venv-dvc, created)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be at least 1 and --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="tether-bench-overhead-"))
    try:
        env = clean_environment(scratch)
        tools, results = build_tools(scratch, env, args.tether.resolve(), args.dvc)
        for result in results.values():
            if not result.available:
                print(f"!! {result.name} is unavailable and will not be measured:\n{result.error}")
        run_bench(tools, results, env, args.n, args.warmup)
    finally:
        if args.keep:
            print(f"repositories kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    summary = report(results, args.n, args.warmup)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp_output = args.output.with_name(args.output.name + ".tmp")
    tmp_output.write_text(json.dumps(summary, indent=2) + "\n")
    tmp_output.replace(args.output)
    print()
    print(markdown_table(summary))
    print(f"\nresults written to {args.output}")
    return 0 if all(result.available for result in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
