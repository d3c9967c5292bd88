"""What a run tells its caller while it goes on (the CLI draws it)."""

from __future__ import annotations

from typing import Any

from tether.structs import field, struct


@struct(frozen=True)
class RunEvent:
    """Something the CLI may want to show while a run goes on."""

    # waiting plan started stage_start stage_skip stage_end reminder stalled warning recorded
    kind: str
    stage: str | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
