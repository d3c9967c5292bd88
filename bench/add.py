"""Tracking data: `tether add` vs `dvc add`, and the second fetch of a cached data source.

1. `tether add` and `dvc add` of the same data, one file and one directory of 1 MiB
   files (default 1 GiB each), each tool in its own fresh repository holding its own
   copy of the bytes (copied before the clock starts, page cache warm), interleaved,
   best of --repeat. Both hash everything and copy it into their cache.
2. A data source (`data:` in tether.yaml) served over HTTP by a loopback server in
   this process: the first `tether data fetch` (download, hash, pin), then a second
   fetch of the same pinned source (the bytes are in the cache and in place) and a
   `tether run` that needs it; the server counts the requests each one makes. Beside
   it `dvc import-url` of the same URL, then `dvc update` (DVC's way to fetch it again).

    .venv/bin/python bench/add.py [--size-mib 1024] [--repeat 2] [--no-dvc]

DVC comes from bench/.venv-dvc (bench/requirements-dvc.txt; created on first use, as
bench/overhead.py does). Results: a markdown table on stdout and bench/results/add.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TETHER = [sys.executable, "-m", "tether"]
OUTPUT = BENCH_DIR / "results" / "add.json"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]


def _load_overhead() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_overhead", BENCH_DIR / "overhead.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_overhead"] = module
    spec.loader.exec_module(module)
    return module


_overhead = _load_overhead()
clean_environment = _overhead.clean_environment
run_checked = _overhead.run_checked


def sh(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    return str(run_checked(list(argv), cwd, env, str(argv[0])))


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def make_data(scratch: Path, size_mib: int) -> tuple[Path, Path]:
    """One file and one directory of 1 MiB files, `size_mib` each, of random bytes."""
    big, folder = scratch / "data.bin", scratch / "images"
    folder.mkdir()
    with open(big, "wb") as handle:
        for index in range(size_mib):
            chunk = os.urandom(1 << 20)
            handle.write(chunk)
            (folder / f"{index:05d}.bin").write_bytes(chunk[::-1])
    return big, folder


def fresh_repo(scratch: Path, tool: str, env: dict[str, str], dvc: Path | None) -> Path:
    repo = scratch / f"{tool}-{time.monotonic_ns()}"
    repo.mkdir()
    sh(["git", "init", "-q"], repo, env)
    if dvc is not None:
        sh([str(dvc), "init", "-q"], repo, env)
    return repo


def place(source: Path, repo: Path) -> None:
    """A copy of the data in the repository (not timed), page cache warm."""
    target = repo / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
        if path.is_file():
            path.read_bytes()


def bench_add(scratch: Path, env: dict[str, str], size_mib: int, repeat: int,
              dvc: Path | None) -> dict[str, Any]:
    big, folder = make_data(scratch, size_mib)
    rows: dict[str, dict[str, float]] = {}
    for data in (big, folder):
        kind = "file" if data.is_file() else f"directory ({size_mib} files)"
        tools: dict[str, list[str]] = {"tether add": [*TETHER, "add", data.name]}
        if dvc is not None:
            tools["dvc add"] = [str(dvc), "add", "-q", data.name]
        best: dict[str, float] = {}
        for round_ in range(repeat):
            order = list(tools.items())
            for name, argv in order[round_ % 2:] + order[: round_ % 2]:
                repo = fresh_repo(scratch, name.split()[0], env, dvc if "dvc" in name else None)
                place(data, repo)
                seconds = timed(lambda: sh(argv, repo, env))  # noqa: B023
                best[name] = min(best.get(name, seconds), seconds)
                shutil.rmtree(repo)
        rows[kind] = best
        print(f"add {kind}: " + "  ".join(f"{k} {v:.2f}s" for k, v in best.items()), flush=True)
    big.unlink()
    shutil.rmtree(folder)
    return {"mib": size_mib, "seconds": rows}


class CountingServer:
    """Serves `root` on 127.0.0.1 and counts GET and HEAD requests."""

    def __init__(self, root: Path) -> None:
        self.gets = self.heads = 0
        counter = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                counter.gets += 1
                super().do_GET()

            def do_HEAD(self) -> None:
                counter.heads += 1
                super().do_HEAD()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client closing a connection early (DVC does) is not news

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def requests(self) -> dict[str, int]:
        found = {"GET": self.gets, "HEAD": self.heads}
        self.gets = self.heads = 0
        return found

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SOURCE_SPEC = """\
data:
  posts:
    source: {url}
    path: data/posts.bin
stages:
  size:
    cmd: wc -c data/posts.bin
    deps: [data/posts.bin]
"""


def bench_source(scratch: Path, env: dict[str, str], size_mib: int,
                 dvc: Path | None) -> dict[str, Any]:
    served = scratch / "served"
    served.mkdir()
    with open(served / "posts.bin", "wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(1 << 20))
    server = CountingServer(served)
    url = f"{server.base}/posts.bin"
    steps: dict[str, dict[str, Any]] = {}
    try:
        repo = fresh_repo(scratch, "tether-source", env, None)
        (repo / "tether.yaml").write_text(SOURCE_SPEC.format(url=url))
        _overhead.commit_all(repo, env)
        for step, argv in (("tether data fetch (first)", ["data", "fetch"]),
                           ("tether data fetch (second)", ["data", "fetch"]),
                           ("tether run (source pinned, cached)", ["run"]),
                           ("tether status (asks the source)", ["status"])):
            seconds = timed(lambda: sh([*TETHER, *argv], repo, env))  # noqa: B023
            steps[step] = {"seconds": seconds, **server.requests()}
        if dvc is not None:
            repo = fresh_repo(scratch, "dvc-source", env, dvc)
            for step, argv in (("dvc import-url (first)", ["import-url", url, "posts.bin"]),
                               ("dvc update (second)", ["update", "posts.bin.dvc"])):
                seconds = timed(lambda: sh([str(dvc), *argv], repo, env))  # noqa: B023
                steps[step] = {"seconds": seconds, **server.requests()}
    finally:
        server.close()
    for step, row in steps.items():
        print(f"{step}: {row['seconds']:.2f}s, GET {row['GET']}, HEAD {row['HEAD']}", flush=True)
    return {"mib": size_mib, "steps": steps}


def table(results: dict[str, Any]) -> str:
    add = results["add"]
    lines = [f"### Tracking {add['mib']} MiB ({results['cpus']} CPUs, best of "
             f"{results['repeat']})", "", "| data | tether add (s) | dvc add (s) | dvc / tether |",
             "|---|---:|---:|---:|"]
    for kind, row in add["seconds"].items():
        ours, theirs = row["tether add"], row.get("dvc add")
        ratio = f"{theirs / ours:.2f}×" if theirs else "–"
        lines.append(f"| {kind} | {ours:.2f} | {theirs:.2f} | {ratio} |" if theirs
                     else f"| {kind} | {ours:.2f} | – | – |")
    source = results["source"]
    lines += ["", f"### A {source['mib']} MiB data source over loopback HTTP", "",
              "| step | seconds | GET | HEAD |", "|---|---:|---:|---:|"]
    for step, row in source["steps"].items():
        lines.append(f"| {step} | {row['seconds']:.2f} | {row['GET']} | {row['HEAD']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--source-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-dvc", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    dvc = None if args.no_dvc else Path(_overhead.ensure_dvc(None))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="tether-bench-add-") as tmp:
        scratch = Path(tmp)
        env = clean_environment(scratch)
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the tether under test
        results["add"] = bench_add(scratch, env, args.size_mib, args.repeat, dvc)
        results["source"] = bench_source(scratch, env, args.source_mib, dvc)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
