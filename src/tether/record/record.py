"""RunRecord: everything known about one run, as stored in its experiment commit.

Written with `dumps`, read back with `RunRecord.from_json` (or `load_record` for a
blob read from a ref): the one way a record is read, typed, whatever version of
tether wrote it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tether.errors import ExperimentError
from tether.layout import (
    LOCK_FILE,
    LOG_HEAD_TAIL,
    LOG_INLINE_CAP,
    RECORD_LOGS_DIR,
    RECORD_PATH,
    RECORD_SCHEMA,
)
from tether.record.validate import record_problem
from tether.structs import asdict, field, struct

if TYPE_CHECKING:
    from tether.record.redact import Secrets

_S = TypeVar("_S")


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

    @classmethod
    def _from_checked(cls, data: dict[str, Any]) -> StageRecord:
        """A stage of a record `record_problem` accepted; what it lacks gets its default."""
        return _built(
            cls,
            name=data["name"],
            status=_of(data.get("status"), str, ""),
            reasons=_of(data.get("reasons"), list, []),
            cmd=_of(data.get("cmd"), list, []),
            exit_code=_int(data.get("exit_code")),
            signal=_int(data.get("signal")),
            started_at=_float(data.get("started_at")),
            ended_at=_float(data.get("ended_at")),
            duration=_float(data.get("duration")),
            fingerprint=data.get("fingerprint"),
            deps=data.get("deps") or {},
            params=data.get("params") or {},
            outs=data.get("outs") or {},
            log=data.get("log"),
            attempt=_int(data.get("attempt")) or 1,
            restored_from=data.get("restored_from"),
            error=_of(data.get("error"), str, None),
        )


class InvalidRecord(ExperimentError):
    """A stored record tether cannot read: malformed, or written by a newer tether."""


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
    # A reproduction's original (`tether repro`): id, ref, commit, name, tolerances and
    # origin; None for any other run.
    reproduces: dict[str, Any] | None = None
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

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """The record `data` (decoded JSON) holds, of any schema written so far (records
        from before `schema` existed included: what they lack gets its default).

        Records come from shared remotes: `InvalidRecord` says what is wrong with one
        that does not validate (`record_problem`), or that a newer tether wrote it.
        """
        problem = record_problem(data)
        if problem is not None:
            raise InvalidRecord(f"{RECORD_PATH}: {problem}")
        created_at = float(data["created_at"])
        return _built(
            cls,
            id=data["id"],
            name=data["name"],
            message=data.get("message") or "",
            baseline=data.get("baseline") or "",
            branch=data.get("branch"),
            kind=data.get("kind") or "pipeline",
            status=data["status"],
            exit_code=_int(data.get("exit_code")),
            created_at=created_at,
            started_at=_float(data.get("started_at")) or created_at,
            ended_at=_float(data.get("ended_at")) or created_at,
            duration=_float(data.get("duration")) or 0.0,
            argv=data.get("argv") or [],
            targets=data.get("targets") or [],
            overrides=data.get("overrides") or [],
            params=data.get("params") or {},
            metrics=data.get("metrics") or {},
            steps=data.get("steps") or {},
            stages=[StageRecord._from_checked(stage) for stage in data.get("stages") or ()],
            code=data.get("code") or {},
            environment=data.get("environment") or {},
            spec=data.get("spec") or {},
            temp_workspace=data.get("temp_workspace") is True,
            redacted_files=_of(data.get("redacted_files"), dict, {}),
            error=_of(data.get("error"), str, None),
            reproduces=_of(data.get("reproduces"), dict, None),
            schema=_int(data.get("schema")) or RECORD_SCHEMA,
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, default=str, allow_nan=False)


def load_record(blob: bytes | None) -> tuple[RunRecord | None, str | None]:
    """A record blob read from a ref, decoded and validated: (record, None), or (None,
    what is wrong) for one the read side skips and reports."""
    if blob is None:
        return None, f"the commit has no {RECORD_PATH}"
    try:
        data = json.loads(blob)
    except (ValueError, RecursionError):
        return None, f"{RECORD_PATH} is not valid JSON"
    try:
        return RunRecord.from_json(data), None
    except InvalidRecord as exc:
        return None, str(exc)


def _built(cls: type[_S], **fields: Any) -> _S:
    """An instance of the struct `cls` with every one of its fields given: what its
    `__init__` would make, without matching the fields to its table one by one (the
    index reads thousands of records at a time)."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def _of(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) else default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


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


def as_committed(record: RunRecord) -> bool:
    """Whether `record` ran its baseline commit as committed: no `-S` override, and no
    uncommitted change or untracked file at start but `tether.lock` (which tether
    writes itself, and which only decides what is skipped)."""
    code = record.code
    if record.overrides or not isinstance(dirty := code.get("dirty"), bool):
        return False
    if not dirty:
        return True
    diff, untracked = code.get("diff"), code.get("untracked")
    if code.get("diff_truncated") or not isinstance(diff, str) \
            or not isinstance(untracked, list) or any(p != LOCK_FILE for p in untracked):
        return False
    return all(line == _LOCK_DIFF for line in diff.splitlines() if line.startswith("diff --git "))


_LOCK_DIFF = f"diff --git a/{LOCK_FILE} b/{LOCK_FILE}"
