"""Many recorded experiments in seconds, for the viewer's bench and browser tests.

Each experiment is what `tether run` records: a commit on top of the baseline whose tree is
the baseline's plus `.tether/record.json` (a real `RunRecord`), under `refs/tether/exps/`.
All of them are written by one `git fast-import` stream instead of one per experiment
(bench/show.py's `generate_experiments` takes ~6 ms each: a minute at 10,000).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SPEC_METRICS = {
    "acc": {"direction": "max", "tolerance": {"kind": "abs", "value": 0.0}},
    "loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.0}},
}


def _steps(index: int, count: int, born: float) -> list[dict[str, float]]:
    rate = 1.0 + (index % 7) / 3
    return [{"step": s, "loss": 1.0 / (1 + rate * s / 100) + 0.01 * ((s * 7919 + index) % 13) / 13,
             "ts": born + s * 0.01} for s in range(count)]


def _records(root: Path, baseline: str, count: int, start: int, steps: int) -> Iterator[bytes]:
    from tether.record.environment import capture_environment
    from tether.record.record import RunRecord, StageRecord

    environment = capture_environment(os.environ)
    born = time.time() - count
    for i in range(start, start + count):
        lr = round(0.001 * (1 + i % 97), 6)
        acc = round(0.5 + (i * 7919 % 1000) / 2000, 6)
        created = born + (i - start)
        name = f"exp-{i:06d}"
        status = "success" if i % 10 else "failed"
        record = RunRecord(
            id=f"run-{i:06d}", name=name, message=f"lr sweep {i}", baseline=baseline,
            branch="main", kind="pipeline", status=status,
            exit_code=0 if i % 10 else 1, created_at=created, started_at=created,
            ended_at=created + 3.5, duration=3.5, argv=["tether", "run", "-S", f"lr={lr}"],
            targets=[], overrides=[f"train.lr={lr}"],
            params={"params.yaml": {"train": {"lr": lr, "epochs": 5 + i % 3, "seed": 0}}},
            metrics={"acc": acc, "loss": round(1 - acc, 6)},
            steps={"train": _steps(i, steps, created)} if steps else {},
            stages=[StageRecord(name="train", status=status, cmd=["python", "train.py"],
                                exit_code=0 if i % 10 else 1, started_at=created,
                                ended_at=created + 3.5, duration=3.5)],
            code={"commit": baseline, "dirty": False}, environment=environment,
            spec={"stages": {"train": {"cmd": ["python", "train.py"]}}, "metrics": SPEC_METRICS},
        )
        yield _fast_import_commit(baseline, name, record.dumps().encode(), int(created))


def _fast_import_commit(baseline: str, name: str, record: bytes, when: int) -> bytes:
    from tether.layout import RECORD_PATH, exp_ref

    ident = f"{os.environ.get('GIT_COMMITTER_NAME', 'Bench')} "
    ident += f"<{os.environ.get('GIT_COMMITTER_EMAIL', 'bench@example.com')}> {when} +0000"
    message = f"tether: {name}\n".encode()
    return b"".join([
        b"blob\nmark :1\ndata %d\n" % len(record), record, b"\n",
        f"commit {exp_ref(baseline, name)}\nauthor {ident}\ncommitter {ident}\n".encode(),
        b"data %d\n" % len(message), message,
        f"from {baseline}\nM 100644 :1 {RECORD_PATH}\n\n".encode(),
    ])


def generate(root: Path, count: int, *, start: int = 0, steps: int = 0) -> None:
    """Record `count` experiments (names exp-000000…) against HEAD of the repository `root`.

    `steps` step metrics (loss, with wall times) per experiment, for the compare plots.
    """
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--force"], cwd=root,
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for chunk in _records(root, baseline, count, start, steps):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed with exit code {proc.returncode}")
