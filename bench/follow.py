"""Time a `tether worker --follow` pass that finds nothing new.

The remote: a bare repository with --branches `exp/*` branches (one commit each on top
of main) and as many other branches. A follower clone considers them all once (every
commit says `[skip tether]`, so nothing runs), then each timed pass lists the remote
and finds nothing new. Timed both ways, median of --repeat runs:

- the library pass (`Follower.follow_once`: one `git ls-remote`, one `for-each-ref`);
- the whole command `tether worker --follow origin --once` (interpreter start included).

    python bench/follow.py [--branches 100] [--repeat 11]
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

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "follow.json"
IDENT = "Bench <bench@example.com> 1700000000 +0000"
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TETHER_"))},
       "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
       "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *argv: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, input=data, capture_output=True,
                          check=True, env=ENV).stdout.decode().strip()


def build(tmp: Path, branches: int) -> Path:
    """The remote and a follower clone that has considered every branch; the clone."""
    src, bare, clone = tmp / "src", tmp / "origin.git", tmp / "follower"
    git(tmp, "init", "-q", "-b", "main", str(src))
    (src / "tether.yaml").write_text("stages:\n  train:\n    cmd: python -c pass\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "pipeline")
    stream = bytearray()
    for i in range(branches * 2):
        name = f"exp/try-{i}" if i < branches else f"feature/f-{i}"
        stream += (f"commit refs/heads/{name}\ncommitter {IDENT}\n").encode()
        message = f"try {i} [skip tether]\n".encode()
        stream += b"data %d\n%s\nfrom refs/heads/main^0\n" % (len(message), message)
        payload = f"{i}\n".encode()
        stream += b"M 100644 inline try.txt\ndata %d\n%s\n" % (len(payload), payload)
    git(src, "fast-import", "--quiet", data=bytes(stream))
    git(tmp, "init", "-q", "--bare", "-b", "main", str(bare))
    git(src, "push", "-q", str(bare), "refs/heads/*:refs/heads/*")
    git(tmp, "clone", "-q", f"file://{bare}", str(clone))
    first = _command(clone)
    if "skipped" not in first.stderr:
        raise SystemExit(f"the first pass did not consider the branches:\n{first.stderr}")
    return clone


def _command(clone: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tether", "worker", "--follow", "origin",
                           "--once"], cwd=clone, capture_output=True, text=True,
                          env={**ENV, "PYTHONPATH": str(REPO_ROOT / "src")})
    if proc.returncode != 0:
        raise SystemExit(f"tether worker --follow failed:\n{proc.stderr}")
    return proc


def time_library(clone: Path, repeat: int) -> list[float]:
    sys.path.insert(0, str(REPO_ROOT / "src"))
    from tether.layout import queue_db, queue_dir
    from tether.queue.embedded import EmbeddedQueue
    from tether.queue.follow import Follower

    os.environ.update({k: v for k, v in ENV.items() if k.startswith("GIT_")})
    backend = EmbeddedQueue(queue_db(clone), queue_dir(clone) / "logs")
    follower = Follower(clone, "origin")
    times = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            found = follower.follow_once(backend)
            times.append(time.perf_counter() - start)
            if found.entries or found.skipped:
                raise SystemExit("a pass found something new")
    finally:
        backend.close()
    return times


def time_command(clone: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = _command(clone)
        times.append(time.perf_counter() - start)
        if "queued" in proc.stderr or "skipped" in proc.stderr:
            raise SystemExit(f"a pass found something new:\n{proc.stderr}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clone = build(Path(tmp), args.branches)
        library = time_library(clone, args.repeat)
        command = time_command(clone, args.repeat)
    rows = [("library pass (Follower.follow_once)", library),
            ("`tether worker --follow origin --once`", command)]
    print(f"| {args.branches} exp/* branches + {args.branches} others, nothing new "
          "| median | max |\n|---|---|---|")
    for label, times in rows:
        print(f"| {label} | {statistics.median(times) * 1000:.0f} ms "
              f"| {max(times) * 1000:.0f} ms |")
    result = {"branches": args.branches, "repeat": args.repeat,
              "machine": platform.platform(), "python": platform.python_version(),
              "library_s": library, "command_s": command,
              "library_median_s": statistics.median(library),
              "command_median_s": statistics.median(command)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
