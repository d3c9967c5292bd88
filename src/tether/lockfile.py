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


def render_lock(stages: dict[str, StageLock]) -> str:
    body = {"version": LOCK_VERSION, "stages": {n: s.to_json() for n, s in stages.items()}}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def write_lock(root: Path, stages: dict[str, StageLock]) -> None:
    """Write `tether.lock` atomically."""
    write_text(root / LOCK_FILE, render_lock(stages))
