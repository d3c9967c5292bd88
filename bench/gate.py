"""Time `tether gate` and `tether report` on a large project history.

The project: a main branch of --commits commits; --exps successful experiments recorded
against the oldest 90% of them (the newest 10% have no build, so the gate walks past
them); a feature commit with one experiment for `tether gate` and --report-n experiments
(with step metrics) for `tether report`. Everything is written in one `git fast-import`
stream. Timed warm (the index built by a first run), median of --repeat runs.

    python bench/gate.py [--commits 1000] [--exps 10000] [--report-n 100] [--repeat 5]
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
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "gate.json"
RULES = {"acc": {"direction": "max", "tolerance": {"kind": "rel", "value": 0.01},
                 "warn": {"kind": "rel", "value": 0.05}},
         "loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.01}}}
IDENT = "Bench <bench@example.com> 1700000000 +0000"


def _record(name: str, baseline: str, created: float, acc: float, steps: int) -> bytes:
    from tether.record.record import RunRecord, StageRecord

    record = RunRecord(
        id=f"run-{name}", name=name, message="", baseline=baseline, branch="main",
        kind="pipeline", status="success", exit_code=0, created_at=created,
        started_at=created, ended_at=created + 3.5, duration=3.5, argv=["tether", "run"],
        targets=[], overrides=[], params={"params.yaml": {"train": {"lr": round(acc / 10, 4)}}},
        metrics={"acc": acc, "loss": round(1 - acc, 6)},
        steps={"train": [{"step": s, "loss": 1 / (s + 1)} for s in range(steps)]},
        stages=[StageRecord(name="train", status="success", duration=3.5)],
        code={"commit": baseline, "dirty": False}, environment={},
        spec={"stages": {"train": {"cmd": ["python", "train.py"]}}, "metrics": RULES})
    return record.dumps().encode()


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def build(root: Path, commits: int, exps: int, report_n: int) -> None:
    """The project at `root`; see the module docstring."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    stream = bytearray()
    for i in range(commits):
        stream += b"commit refs/heads/main\nmark :%d\ncommitter %s\n" % (i + 1, IDENT.encode())
        stream += _data(b"commit %d" % i)
        stream += b"M 100644 inline history.txt\n" + _data(b"%d\n" % i)
    stream += b"commit refs/heads/feature\nmark :%d\ncommitter %s\n" % (commits + 1,
                                                                        IDENT.encode())
    stream += _data(b"feature") + b"from :%d\n" % commits
    stream += b"M 100644 inline feature.txt\n" + _data(b"change\n")
    stream += b"done\n"
    subprocess.run(["git", "fast-import", "--quiet", "--done"], cwd=root, input=bytes(stream),
                   check=True)
    shas = subprocess.run(["git", "rev-list", "--reverse", "--first-parent", "main"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()
    feature = subprocess.run(["git", "rev-parse", "feature"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
    built = shas[: max(1, commits * 9 // 10)]
    born = time.time() - exps - report_n - 10
    stream = bytearray()
    plan = [(built[i * len(built) // exps], f"exp-{i:05d}", 0.8 + (i % 100) / 1000, 5)
            for i in range(exps)]
    plan += [(feature, f"exp-{i:05d}", 0.8 + (i % 7) / 100, 50) for i in range(report_n)]
    for n, (baseline, name, acc, steps) in enumerate(plan):
        stream += f"commit refs/tether/exps/{baseline}/{name}\n".encode()
        stream += b"committer %s\n" % IDENT.encode() + _data(b"tether: %s" % name.encode())
        stream += f"from {baseline}\ndeleteall\n".encode()
        stream += b"M 100644 inline .tether/record.json\n"
        stream += _data(_record(name, baseline, born + n, acc, steps))
    stream += b"done\n"
    subprocess.run(["git", "fast-import", "--quiet", "--done", "--force"], cwd=root,
                   input=bytes(stream), check=True)
    subprocess.run(["git", "switch", "-q", "feature"], cwd=root, check=True)


def timed(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> dict[str, Any]:
    samples = []
    for _ in range(repeat + 1):  # the first run builds the index: not counted
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode not in (0, 16):
            raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr[-2000:]}")
    warm = samples[1:]
    return {"median_s": statistics.median(warm), "min_s": min(warm), "max_s": max(warm),
            "cold_s": samples[0], "samples_s": warm}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--exps", type=int, default=10_000)
    parser.add_argument("--report-n", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT / "src"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached, not recompiled
    tether = [sys.executable, "-m", "tether"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "project"
        started = time.perf_counter()
        build(root, args.commits, args.exps, args.report_n)
        built_s = time.perf_counter() - started
        gate_loose = timed([*tether, "gate", "--json", "--no-fetch", "exp-00000"], root, env,
                           args.repeat)
        report_loose = timed([*tether, "report", "--md", "--no-fetch"], root, env, args.repeat)
        # As `git gc` (run automatically) or `git pack-refs` leaves them.
        subprocess.run(["git", "pack-refs", "--all"], cwd=root, check=True)
        gate = timed([*tether, "gate", "--json", "--no-fetch", "exp-00000"], root, env,
                     args.repeat)
        report = timed([*tether, "report", "--md", "--no-fetch"], root, env, args.repeat)
        check = subprocess.run([*tether, "gate", "--json", "--no-fetch", "exp-00000"],
                               cwd=root, env=env, capture_output=True, text=True)
        distance = json.loads(check.stdout)["main_build"]["distance"]
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "setup": {"commits": args.commits, "experiments": args.exps + args.report_n,
                  "report_experiments": args.report_n, "walked_to_main_build": distance,
                  "build_s": round(built_s, 1)},
        "gate_warm": gate, "report_warm": report,
        "gate_warm_loose_refs": gate_loose, "report_warm_loose_refs": report_loose,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"gate   over {args.commits} commits / {args.exps} experiments: "
          f"{gate['median_s'] * 1000:.0f} ms warm, packed refs "
          f"({gate_loose['median_s'] * 1000:.0f} ms loose; median of {args.repeat}), "
          f"main build {distance} commits down")
    print(f"report of {args.report_n} experiments: {report['median_s'] * 1000:.0f} ms warm, "
          f"packed refs ({report_loose['median_s'] * 1000:.0f} ms loose)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
