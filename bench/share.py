"""Sharing benchmarks: hashing, push/pull of many experiments, and a run-cache hit.

1. Hashing one 1 GiB file (page cache warm): tether's hasher vs `b3sum`
   (one thread, and default), `md5sum` and `dvc add`.
2. Push and pull of N experiments (default 1,000) with one small artifact each,
   to a bare git repository and a local-directory artifact remote: `tether
   push --all` / `tether pull --all` vs `dvc exp push -A` / `dvc exp pull -A`
   of --dvc-n experiments (creating DVC experiments costs ~1.5 s each), whose
   times are scaled linearly to N (said in the table).
3. A run-cache hit for a stage with 1 GiB of stat-cached dependencies: the
   fingerprint (stat-cached hashes), the run-cache lookup and restoring the
   stage's outputs from the cache, in-process.

    .venv/bin/python bench/share.py [--n 1000] [--dvc-n 40] [--size-mib 1024] [--no-dvc]

Results: a markdown table on stdout and bench/results/share.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TETHER = [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "tether"]
DVC = BENCH_DIR / ".venv-dvc" / "bin" / "dvc"
OUTPUT = BENCH_DIR / "results" / "share.json"

# Keep bench/ off sys.path (a script there must never shadow a standard module);
# overhead.py is loaded by path.
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


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def sh(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    return run_checked(list(argv), cwd, env, argv[0])


# -- 1. hashing ------------------------------------------------------------------


def bench_hashing(scratch: Path, env: dict[str, str], size_mib: int, dvc: bool) -> dict[str, Any]:
    from tether.cache.hashing import hash_file_uncached

    big = scratch / "big.bin"
    with open(big, "wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(1 << 20))
    big.read_bytes()  # warm the page cache
    size = big.stat().st_size
    rows: dict[str, float] = {}
    rows["tether (blake3, all cores)"] = best_of(3, lambda: hash_file_uncached(big))
    if shutil.which("b3sum"):
        rows["b3sum --num-threads 1"] = best_of(
            3, lambda: sh(["b3sum", "--num-threads", "1", str(big)], scratch, env))
        rows["b3sum (default threads)"] = best_of(3, lambda: sh(["b3sum", str(big)], scratch, env))
    rows["md5sum"] = best_of(3, lambda: sh(["md5sum", str(big)], scratch, env))
    if dvc and DVC.exists():
        def dvc_add() -> None:
            repo = scratch / f"dvc-add-{time.monotonic_ns()}"
            repo.mkdir()
            sh(["git", "init", "-q"], repo, env)
            sh([str(DVC), "init", "-q"], repo, env)
            os.link(big, repo / "big.bin")
            start = time.perf_counter()
            sh([str(DVC), "add", "-q", "big.bin"], repo, env)
            timings.append(time.perf_counter() - start)
            shutil.rmtree(repo)

        timings: list[float] = []
        for _ in range(2):
            dvc_add()
        rows["dvc add (md5 + cache)"] = min(timings)
    big.unlink()
    return {"bytes": size, "seconds": rows,
            "mib_per_s": {k: size / v / 2**20 for k, v in rows.items()}}


# -- 2. push / pull ----------------------------------------------------------------


def make_tether_experiments(repo: Path, env: dict[str, str], count: int) -> None:
    """`count` experiment commits with one small cached artifact each, in one fast-import."""
    from tether.cache.objects import ObjectStore

    store = ObjectStore(repo, link_order=("copy",))
    base = sh(["git", "rev-parse", "HEAD"], repo, env).strip()
    scratch = repo / ".tether" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    stream = []
    now = time.time()
    for i in range(count):
        artifact = scratch / "model.bin"
        artifact.write_bytes(f"model {i}\n".encode() * 200)
        key = store.save(artifact, link=False)
        fingerprint = f"{i:032x}"
        record = {"id": f"run{i}", "name": f"exp-{i}", "created_at": now + i, "status": "success",
                  "metrics": {"acc": i / count}, "stages": [{
                      "name": "train", "status": "success", "fingerprint": fingerprint,
                      "outs": {"model.bin": key}}]}
        data = json.dumps(record).encode()
        stream.append(
            f"commit refs/tether/exps/{base}/exp-{i}\n"
            f"committer bench <bench@example.invalid> {int(now) + i} +0000\n"
            f"data 10\nexp {i:05d}\n\nfrom {base}\n"
            f"M 100644 inline .tether/record.json\ndata {len(data)}\n".encode() + data + b"\n"
        )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, env=env,
                   input=b"".join(stream), check=True)


def bench_tether_share(scratch: Path, env: dict[str, str], count: int) -> dict[str, float]:
    origin, store, repo, clone = (scratch / n for n in ("t-origin.git", "t-store", "t-a", "t-b"))
    sh(["git", "init", "-q", "--bare", str(origin)], scratch, env)
    repo.mkdir()
    sh(["git", "init", "-q"], repo, env)
    (repo / "README").write_text("bench\n")
    sh([*TETHER, "remote", "add", "store", str(store), "--default"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "start"], repo, env)
    sh(["git", "remote", "add", "origin", str(origin)], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:main"], repo, env)
    make_tether_experiments(repo, env, count)
    start = time.perf_counter()
    out = sh([*TETHER, "push", "--all"], repo, env)
    push = time.perf_counter() - start
    sh(["git", "clone", "-q", str(origin), str(clone)], scratch, env)
    start = time.perf_counter()
    sh([*TETHER, "pull", "--all"], clone, env)
    pull = time.perf_counter() - start
    refs = sh(["git", "for-each-ref", "refs/tether/exps/"], clone, env).splitlines()
    assert len(refs) == count, (len(refs), out)
    objects = sum(1 for _ in (clone / ".tether" / "cache" / "objects" / "b3").rglob("*")
                  if _.is_file())
    assert objects == count, objects
    return {"push": push, "pull": pull}


DVC_YAML = "stages:\n  train:\n    cmd: python train.py\n    params: [lr]\n    outs: [model.bin]\n"
TRAIN = ("import re\nlr = re.search(r'lr: (.*)', open('params.yaml').read()).group(1)\n"
         "open('model.bin', 'w').write(f'model {lr}\\n' * 200)\n")


def bench_dvc_share(scratch: Path, env: dict[str, str], count: int) -> dict[str, float]:
    origin, store, repo, clone = (scratch / n for n in ("d-origin.git", "d-store", "d-a", "d-b"))
    sh(["git", "init", "-q", "--bare", str(origin)], scratch, env)
    repo.mkdir()
    sh(["git", "init", "-q"], repo, env)
    sh([str(DVC), "init", "-q"], repo, env)
    for name, text in (("dvc.yaml", DVC_YAML), ("train.py", TRAIN), ("params.yaml", "lr: 0\n")):
        (repo / name).write_text(text)
    sh([str(DVC), "remote", "add", "-d", "store", str(store)], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "start"], repo, env)
    sh(["git", "remote", "add", "origin", str(origin)], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:main"], repo, env)
    for i in range(count):
        sh([str(DVC), "exp", "run", "-q", "-S", f"lr={i + 1}", "-n", f"exp-{i}"], repo, env)
    start = time.perf_counter()
    sh([str(DVC), "exp", "push", "-A", "origin"], repo, env)
    push = time.perf_counter() - start
    sh(["git", "clone", "-q", str(origin), str(clone)], scratch, env)
    start = time.perf_counter()
    sh([str(DVC), "exp", "pull", "-A", "origin"], clone, env)
    pull = time.perf_counter() - start
    refs = sh(["git", "for-each-ref", "refs/exps/"], clone, env).splitlines()
    assert len([r for r in refs if "/exps/" in r]) >= count, refs[:3]
    return {"push": push, "pull": pull}


# -- 3. run-cache hit --------------------------------------------------------------


def bench_run_cache_hit(scratch: Path, size_mib: int) -> dict[str, float]:
    import blake3

    from tether.cache.hashing import StatCache
    from tether.cache.objects import ObjectStore
    from tether.cache.runcache import RunCache

    root = scratch / "rc"
    deps = root / "data"
    deps.mkdir(parents=True)
    for i in range(8):  # 1 GiB of dependencies in 8 files
        with open(deps / f"shard-{i}.bin", "wb") as handle:
            for _ in range(size_mib // 8):
                handle.write(os.urandom(1 << 20))
    db = root / ".tether" / "tmp" / "statcache.db"
    cache = StatCache(db)
    cache.hash_path(deps)  # the first (cold) hashing fills the stat cache
    cache.close()
    (root / "model.bin").write_bytes(os.urandom(1 << 20))
    store = ObjectStore(root, link_order=("reflink", "copy"))
    out_key = store.save(root / "model.bin", link=False)
    runs = RunCache(root)

    def fingerprint(stat: StatCache) -> str:
        basis = {"cmd": ["python train.py"], "deps": {"data": stat.hash_path(deps)},
                 "params": {"lr": 0.1}}
        return blake3.blake3(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:32]

    first = StatCache(db)
    runs.put(fingerprint(first), {"outs": {"model.bin": out_key}, "metrics": {"acc": 1},
                                  "experiment": {"ref": "r", "name": "n"}, "run_id": "x"})
    first.close()

    def hit() -> None:
        stat = StatCache(db)
        entry = runs.get(fingerprint(stat))
        assert entry is not None
        (root / "model.bin").unlink(missing_ok=True)
        for path, key in entry["outs"].items():
            store.restore(key, root / path)
        stat.close()

    return {"hit": best_of(5, hit)}


# -- report ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="tether experiments to push/pull")
    parser.add_argument("--dvc-n", type=int, default=40, help="DVC experiments (scaled to --n)")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--no-dvc", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    use_dvc = not args.no_dvc and DVC.exists()
    results: dict[str, Any] = {"n": args.n, "dvc_n": args.dvc_n if use_dvc else 0,
                               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="tether-bench-share-") as tmp:
        scratch = Path(tmp)
        env = clean_environment(scratch)
        results["hashing"] = bench_hashing(scratch, env, args.size_mib, use_dvc)
        results["tether_share"] = bench_tether_share(scratch, env, args.n)
        if use_dvc:
            dvc = bench_dvc_share(scratch, env, args.dvc_n)
            results["dvc_share_measured"] = dvc
            results["dvc_share_scaled"] = {k: v * args.n / args.dvc_n for k, v in dvc.items()}
        results["run_cache"] = bench_run_cache_hit(scratch, args.size_mib)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    hashing = results["hashing"]
    speeds = hashing["mib_per_s"]
    single = speeds.get("b3sum --num-threads 1")
    lines = [f"### Hashing a {hashing['bytes'] / 2**30:.2f} GiB file (page cache warm, "
             f"{results['cpus']} CPUs)", "", "| tool | seconds | MiB/s | tether vs it |",
             "|---|---:|---:|---:|"]
    ours = speeds["tether (blake3, all cores)"]
    for tool, seconds in hashing["seconds"].items():
        lines.append(f"| {tool} | {seconds:.3f} | {speeds[tool]:.0f} | "
                     f"{ours / speeds[tool]:.2f}× |")
    if single:
        lines.append(f"\ntether throughput = {ours / single:.0%} of single-threaded b3sum "
                     "(target ≥ 80%)")
    n = results["n"]
    ours_share = results["tether_share"]
    lines += ["", f"### Push and pull of {n} experiments (one small artifact each)", "",
              "| step | tether (s) | dvc (s) | dvc / tether |", "|---|---:|---:|---:|"]
    scaled = results.get("dvc_share_scaled")
    for step in ("push", "pull"):
        dvc = f"{scaled[step]:.1f}" if scaled else "n/a"
        ratio = f"{scaled[step] / ours_share[step]:.1f}×" if scaled else "n/a"
        lines.append(f"| {step} | {ours_share[step]:.2f} | {dvc} | {ratio} |")
    if scaled:
        measured = results["dvc_share_measured"]
        lines.append(f"\nDVC measured on {results['dvc_n']} experiments (push "
                     f"{measured['push']:.1f} s, pull {measured['pull']:.1f} s), scaled "
                     f"linearly to {n}.")
    hit = results["run_cache"]["hit"]
    lines += ["", f"### Run-cache hit, 1 GiB of stat-cached dependencies: {hit * 1000:.0f} ms "
              "(target ≤ 200 ms)"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
