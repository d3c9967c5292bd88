"""Read recorded experiments back: summaries for `tether show`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tether.gitstore.experiments import list_experiments
from tether.gitstore.git import Git, find_root
from tether.layout import RECORD_PATH
from tether.record.metrics import flatten


@dataclass
class ExperimentSummary:
    name: str
    ref: str
    commit: str
    baseline: str
    status: str
    created: str
    created_at: float
    duration: float
    message: str
    params: dict[str, Any]
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_records(git: Git, commits: list[str]) -> list[dict[str, Any]]:
    """The records of many experiment commits in one `git cat-file --batch`."""
    if not commits:
        return []
    request = "".join(f"{c}:{RECORD_PATH}\n" for c in commits).encode()
    out = git.run("cat-file", "--batch", input=request).stdout
    records: list[dict[str, Any]] = []
    pos = 0
    for _ in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            records.append({})
            continue
        size = int(header[2])
        records.append(json.loads(out[pos : pos + size]))
        pos += size + 1
    return records


def list_summaries(cwd: Path, *, all_baselines: bool = False) -> list[ExperimentSummary]:
    """Experiments under HEAD (or all), oldest first."""
    git = Git(find_root(cwd))
    baseline = None if all_baselines else git.head_commit()
    exps = list_experiments(git, baseline)
    summaries = []
    for exp, record in zip(exps, read_records(git, [e.commit for e in exps]), strict=True):
        if not record:
            continue
        params = {
            (k if file == "params.yaml" else f"{file}:{k}"): v
            for file, content in record.get("params", {}).items()
            for k, v in flatten(content).items()
        }
        summaries.append(ExperimentSummary(
            name=exp.name, ref=exp.ref, commit=exp.commit, baseline=exp.baseline,
            status=record.get("status", "?"),
            created=datetime.fromtimestamp(record.get("created_at", 0)).strftime("%Y-%m-%d %H:%M"),
            created_at=record.get("created_at", 0.0),
            duration=record.get("duration", 0.0), message=record.get("message", ""),
            params=params, metrics=record.get("metrics", {}),
        ))
    summaries.sort(key=lambda s: s.created_at)
    return summaries
