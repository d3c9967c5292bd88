"""Notification latency and the cost of notify on a successful `tether run`.

Run: `PYTHONPATH=src .venv/bin/python bench/notify.py [--runs 50] [--repeat 15]`.

1. Latency: `--runs` real `tether run`s whose stage fails, with TETHER_NOTIFY
   pointing at a json:// receiver on loopback; latency = arrival at the receiver
   minus the failed stage's recorded end. Target: p95 <= 2 s.
2. Stall: `--stall-runs` runs whose stage prints once (noting the time) and then stays
   silent, under `stall_timeout: 1s`; latency = arrival of the `stalled` message minus
   the stage's last output. Target: <= stall_timeout + 2 s.
3. Overhead: `tether run --force -- true`, with and without TETHER_NOTIFY (default
   `on:` events, so nothing matches a success), interleaved, `--repeat` times
   each; the difference of the medians (and of the minimums: the machine's noise
   is larger than the target). Target <= 10 ms, nothing sent.
Results are written to bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.changed:
                    outer.arrivals.append((time.time(), json.loads(body)))
                    outer.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self.changed:
            self.changed.wait_for(lambda: len(self.arrivals) >= count, timeout)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _project(tmp: Path) -> Path:
    root = tmp / "project"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "tether.yaml").write_text(
        "stages:\n  train:\n    cmd: python -c \"import sys; print('loss nan'); sys.exit(1)\"\n")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "start")
    return root


def _tether(root: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tether", *args], cwd=root, env=env,
                   capture_output=True, check=False)
    return time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency(root: Path, runs: int) -> dict[str, float]:
    receiver = Receiver()
    env = {**os.environ, "TETHER_NOTIFY": receiver.url}
    for i in range(runs):
        _tether(root, env, "run", "--force", "-n", f"fail{i}")
    receiver.wait_for(runs)
    ended = {}
    out = subprocess.run([sys.executable, "-m", "tether", "show", "--json"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    experiments = data if isinstance(data, list) else data.get("experiments", [])
    for exp in experiments:
        ref = exp.get("ref", "")
        blob = subprocess.run(["git", "cat-file", "blob", f"{ref}:.tether/record.json"],
                              cwd=root, capture_output=True, text=True, check=True).stdout
        record = json.loads(blob)
        ended[record["id"]] = record["stages"][-1]["ended_at"]
    delays = [at - ended[body["id"].split(":")[0]] for at, body in receiver.arrivals
              if body["id"].split(":")[0] in ended]
    return {"events": len(delays), "p50_s": _percentile(delays, 0.5),
            "p95_s": _percentile(delays, 0.95), "max_s": max(delays)}


STALL_TIMEOUT = 1.0
STALLING = (
    "import time, pathlib\n"
    "print('working', flush=True)\n"
    "pathlib.Path('last-output').write_text(repr(time.time()))\n"
    "time.sleep(60)\n"
)


def stall(tmp: Path, runs: int) -> dict[str, float]:
    """From a stage's last output to the `stalled` message at the receiver."""
    root = tmp / "stalling"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "stall.py").write_text(STALLING)
    (root / ".gitignore").write_text("last-output\n")
    (root / "tether.yaml").write_text(
        f"stages:\n  train:\n    cmd: python stall.py\n    stall_timeout: {STALL_TIMEOUT:g}s\n")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "start")
    receiver = Receiver()
    env = {**os.environ, "TETHER_NOTIFY": receiver.url}
    delays = []
    for i in range(runs):
        before = len(receiver.arrivals)
        _tether(root, env, "run", "--force", "-n", f"stall{i}")
        receiver.wait_for(before + 1)
        arrived, body = receiver.arrivals[before]
        assert body.get("event") == "stalled", body
        delays.append(arrived - float((root / "last-output").read_text()))
    return {"runs": runs, "stall_timeout_s": STALL_TIMEOUT,
            "p50_s": _percentile(delays, 0.5), "max_s": max(delays),
            "max_beyond_timeout_s": max(delays) - STALL_TIMEOUT}


def overhead(root: Path, repeat: int) -> dict[str, float]:
    receiver = Receiver()
    plain = {**os.environ}
    plain.pop("TETHER_NOTIFY", None)
    notified = {**plain, "TETHER_NOTIFY": receiver.url}
    without, with_notify = [], []
    for i in range(repeat):
        without.append(_tether(root, plain, "run", "-n", f"ok{i}a", "--", "true"))
        with_notify.append(_tether(root, notified, "run", "-n", f"ok{i}b", "--", "true"))
    return {"runs": repeat, "median_without_ms": statistics.median(without) * 1000,
            "median_with_ms": statistics.median(with_notify) * 1000,
            "overhead_ms": (statistics.median(with_notify) - statistics.median(without)) * 1000,
            "overhead_min_ms": (min(with_notify) - min(without)) * 1000,
            "sent_on_success": len(receiver.arrivals)}


def in_process(root: Path, repeat: int = 200) -> dict[str, float]:
    """What the listener itself costs a successful run: settings, events, close."""
    from tether.execute.events import RunEvent
    from tether.feedback.listeners import RunListener
    from tether.feedback.notify import RunFacts, load_settings
    from tether.feedback.watch import Feedback

    env = {"TETHER_NOTIFY": "json://127.0.0.1:9/hook"}
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        settings = load_settings(root, env)
        listener = RunListener(Feedback(root, settings), root)
        listener(RunEvent("started", None, "x", {"run_id": f"r{i}", "name": "x",
                                                 "baseline": "0" * 40, "expected": {"s": None}}))
        listener(RunEvent("stage_start", "s", ""))
        listener(RunEvent("stage_end", "s", "success"))
        listener.feedback.run_ended(f"r{i}", RunFacts(name="x", run_id=f"r{i}", status="success"))
        listener.feedback.close(3)
        times.append(time.perf_counter() - started)
    return {"listener_median_ms": statistics.median(times) * 1000,
            "listener_max_ms": max(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--stall-runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp))
        result = {"latency": latency(root, args.runs), "stall": stall(Path(tmp), args.stall_runs),
                  "overhead": overhead(root, args.repeat), "in_process": in_process(root)}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "notify.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
