"""`tether.lock`: what each stage consumed and produced when it last succeeded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether.atomic import write_text
from tether.errors import SpecError
from tether.layout import LOCK_FILE
from tether.structs import field, struct

LOCK_VERSION = 1


@struct
class StageLock:
    """The lock entry of one stage."""

    fingerprint: str
    cmd: list[str]
    deps: dict[str, str | None]
    params: dict[str, Any]
    outs: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "cmd": self.cmd,
            "deps": self.deps,
            "params": self.params,
            "outs": self.outs,
        }


@struct
class SourcePin:
    """What a data source's bytes were when first fetched: the source's identity as its
    filesystem reported it (URL without credentials, ETag, size, mtime) and the content
    hash every later fetch must match; with `prepare`, the key of the derived file."""

    source: str
    path: str
    key: str
    size: int | None = None
    etag: str | None = None
    mtime: str | None = None
    subset: dict[str, Any] = field(default_factory=dict)
    prepare: str | None = None
    prepared: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "path": self.path, "key": self.key, "size": self.size,
                "etag": self.etag, "mtime": self.mtime, "subset": self.subset,
                "prepare": self.prepare, "prepared": self.prepared}


def _read_json(root: Path) -> dict[str, Any] | None:
    path = root / LOCK_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return data
    except (ValueError, TypeError) as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: Exception) -> SpecError:
    return SpecError(
        f"{LOCK_FILE}: unreadable ({exc.__class__.__name__}: {exc})",
        hint=f"restore it from git (git checkout -- {LOCK_FILE}) or delete it "
        "to re-run every stage",
    )


def read_pins(root: Path) -> dict[str, SourcePin]:
    """The data sources pinned in `tether.lock`, by name; {} when there are none."""
    return _pins(_read_json(root) or {})


def parse_pins(text: str) -> dict[str, SourcePin]:
    """The pins of a `tether.lock` read from elsewhere (a commit)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _unreadable(exc) from None
    return _pins(data if isinstance(data, dict) else {})


def _pins(data: dict[str, Any]) -> dict[str, SourcePin]:
    """The pins of a lock's JSON; a path that would write outside the work tree or into
    .git is refused (a lock may come from someone else's commit)."""
    if not data.get("data"):
        return {}
    from tether.pathguard import check_relpath

    try:
        return {name: SourcePin(
            source=str(pin["source"]),
            path=check_relpath(str(pin["path"]), where=f"{LOCK_FILE} (data.{name})"),
            key=str(pin["key"]),
            size=pin.get("size"), etag=pin.get("etag"), mtime=pin.get("mtime"),
            subset=dict(pin.get("subset") or {}), prepare=pin.get("prepare"),
            prepared=pin.get("prepared"),
        ) for name, pin in (data.get("data") or {}).items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise _unreadable(exc) from None


def write_pins(root: Path, pins: dict[str, SourcePin]) -> None:
    """Replace the `data` section of `tether.lock` (its stages kept), atomically."""
    stages = read_lock(root)
    write_text(root / LOCK_FILE, render_lock(stages, pins))


def read_lock(root: Path) -> dict[str, StageLock]:
    """The stages recorded in `tether.lock`; {} when there is none."""
    path = root / LOCK_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        stages = data["stages"]
        return {
            name: StageLock(
                fingerprint=entry["fingerprint"],
                cmd=list(entry["cmd"]),
                deps=dict(entry["deps"]),
                params=dict(entry["params"]),
                outs=dict(entry.get("outs", {})),
            )
            for name, entry in stages.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SpecError(
            f"{LOCK_FILE}: unreadable ({exc.__class__.__name__}: {exc})",
            hint=f"restore it from git (git checkout -- {LOCK_FILE}) or delete it "
            "to re-run every stage",
        ) from None


def render_lock(stages: dict[str, StageLock], pins: dict[str, SourcePin] | None = None) -> str:
    body: dict[str, Any] = {"version": LOCK_VERSION,
                            "stages": {n: s.to_json() for n, s in stages.items()}}
    if pins:
        body["data"] = {n: p.to_json() for n, p in sorted(pins.items())}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def write_lock(root: Path, stages: dict[str, StageLock]) -> None:
    """Write the stages of `tether.lock` atomically (its pinned data sources kept)."""
    write_text(root / LOCK_FILE, render_lock(stages, read_pins(root)))
