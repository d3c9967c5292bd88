"""RunRecord: everything known about one run, as stored in its experiment commit."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.layout import LOG_HEAD_TAIL, LOG_INLINE_CAP, RECORD_LOGS_DIR, RECORD_SCHEMA
from tether.structs import asdict, field, struct

if TYPE_CHECKING:
    from tether.record.redact import Secrets


@struct
class StageRecord:
    """How one stage of a run went."""

    name: str
    status: str  # success failed stalled timeout interrupted skipped not_run
    reasons: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration: float | None = None
    fingerprint: str | None = None
    deps: dict[str, str | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outs: dict[str, str | None] = field(default_factory=dict)
    log: dict[str, Any] | None = None
    attempt: int = 1
    restored_from: dict[str, str] | None = None  # the run whose outputs were reused
    error: str | None = None  # why a stage that exited 0 is failed (e.g. invalid metrics)


@struct
class RunRecord:
    """The versioned, machine-readable record of one run."""

    id: str
    name: str
    message: str
    baseline: str
    branch: str | None
    kind: str  # pipeline | command
    status: str
    exit_code: int | None
    created_at: float
    started_at: float
    ended_at: float
    duration: float
    argv: list[str]
    targets: list[str]
    overrides: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    steps: dict[str, list[dict[str, Any]]]
    stages: list[StageRecord]
    code: dict[str, Any]
    environment: dict[str, Any]
    spec: dict[str, Any]
    temp_workspace: bool = False
    # Files of the experiment tree stored with secret values replaced: path -> names.
    redacted_files: dict[str, list[str]] = field(default_factory=dict)
    # Why a run failed before any stage ran (a queued entry's bad spec, missing input,
    # unusable snapshot); None when its stages tell.
    error: str | None = None
    schema: int = RECORD_SCHEMA

    def redact(self, secrets: Secrets) -> None:
        """Replace every secret value in the record (its stages too) with [redacted:NAME]."""
        if not secrets:
            return
        for stage in self.stages:
            _scrub_fields(stage, secrets)
        # The name stays: it is the ref's name too, and a validated identifier.
        _scrub_fields(self, secrets, keep=("stages", "name"))

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = asdict(self)
        return result

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, default=str, allow_nan=False)


def _scrub_fields(obj: Any, secrets: Secrets, keep: tuple[str, ...] = ()) -> None:
    for name in type(obj).__match_args__:
        if name not in keep:
            setattr(obj, name, secrets.scrub_json(getattr(obj, name)))


def embed_log(log_path: Path, stage: str) -> tuple[dict[str, Any], str | None]:
    """The record's view of a stage log, and the tree path of the whole log if kept.

    A log over LOG_INLINE_CAP is never read whole: only its head and tail are.
    """
    tree_path = f"{RECORD_LOGS_DIR}/{stage}.log"
    try:
        handle = open(log_path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        handle = None
    if handle is None:
        return {"bytes": 0, "text": "", "truncated": False, "path": tree_path}, tree_path
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= LOG_INLINE_CAP:
            data = handle.read(LOG_INLINE_CAP)
            return {"bytes": len(data), "text": data.decode(errors="replace"),
                    "truncated": False, "path": tree_path}, tree_path
        head = handle.read(LOG_HEAD_TAIL)
        handle.seek(size - LOG_HEAD_TAIL)
        tail = handle.read(LOG_HEAD_TAIL)
    return (
        {
            "bytes": size,
            "text": None,
            "head": head.decode(errors="replace"),
            "tail": tail.decode(errors="replace"),
            "truncated": True,
            "path": tree_path,
        },
        tree_path,
    )


def clean_json(value: Any) -> Any:
    """Make a value storable as strict JSON, recursively.

    JSON has no NaN or infinities, yet a diverged loss is worth recording: they
    are kept as the strings "NaN", "Infinity" and "-Infinity" (the tokens Python's
    and JavaScript's JSON readers use), shown as such and never ranked as numbers.
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value
