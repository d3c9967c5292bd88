"""A big stage log is recorded (head and tail inline, whole in the tree), never read whole."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

from conftest import git
from tether.gitstore.fastrecord import commit_workspace
from tether.gitstore.git import Git
from tether.layout import LOG_HEAD_TAIL
from tether.record.record import StageRecord
from tether.record.results import record_logs

LOG_SIZE = 20 * 1024 * 1024
PEAK_LIMIT = 4 * 1024 * 1024  # a few 1 MiB chunks, never the 20 MiB log


def _big_log(path: Path) -> None:
    path.parent.mkdir(parents=True)
    line = b"epoch 0001 loss 0.123456 acc 0.987654 lr 0.001 ................................\n"
    with open(path, "wb") as handle:
        handle.write(b"FIRST LINE\n")
        for _ in range(LOG_SIZE // len(line)):
            handle.write(line)
        handle.write(b"LAST LINE\n")


def test_a_20_mib_log_is_recorded_without_holding_it(repo: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    log = run_dir / "logs" / "train.log"
    _big_log(log)
    size = log.stat().st_size
    stage = StageRecord(name="train", status="success")
    head = git(repo, "rev-parse", "HEAD")

    tracemalloc.start()
    try:
        files = record_logs([stage], run_dir)
        commit = commit_workspace(
            Git(repo), repo, parent=head, ref="refs/tether/exps/test/big", message="big\n",
            ident="Tess Tether <tess@example.com>", token="big", scratch=tmp_path / "scratch",
            extra_files=lambda redacted: files,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < PEAK_LIMIT, f"peak {peak} bytes while recording a {size}-byte log"
    assert stage.log is not None and stage.log["truncated"] and stage.log["bytes"] == size
    assert stage.log["head"].startswith("FIRST LINE\n")
    assert stage.log["tail"].endswith("LAST LINE\n")
    assert len(stage.log["tail"]) == LOG_HEAD_TAIL
    assert commit is not None
    stored = subprocess.run(["git", "cat-file", "blob", f"{commit}:.tether/logs/train.log"],
                            cwd=repo, capture_output=True, check=True).stdout
    assert stored == log.read_bytes()
