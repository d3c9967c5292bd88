"""Lifecycle events as CloudEvents 1.0: `dev.tether.run.*` and `dev.tether.schedule.fired`,
see docs/events.md.

An event is built here as the structured-mode JSON object (specversion, id,
source, type, subject, time, datacontenttype, data, and the `sequence`
extension: its position in its run, so a consumer can order a run's events).
Building it needs no import of the SDK: the local sink (`.tether/events.jsonl`,
append-only) writes it as is. HTTP sinks get it through the `cloudevents` SDK
(`to_http`), imported only when a webhook is configured.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether.layout import state_dir

PREFIX = "dev.tether.run."
TYPES = ("queued", "started", "stage.started", "stage.finished", "stalled", "reminder",
         "finished", "failed", "regressed", "reproduced", "not_reproduced")
# Events that are not about one run: `dev.tether.<kind>`.
OTHER_TYPES = ("schedule.fired",)
SPECVERSION = "1.0"


def events_path(root: Path) -> Path:
    return state_dir(root) / "events.jsonl"


def repository_source(root: Path) -> str:
    """The `source` of this repository's events: its origin URL without credentials,
    or a file URL of its folder."""
    from tether.gitstore.git import Git

    url = Git(root).run("config", "--get", "remote.origin.url", check=False).stdout.decode()
    url = url.strip()
    if url:
        if "://" in url:
            scheme, _, rest = url.partition("://")
            host_and_path = rest.rpartition("@")[2] if "@" in rest.split("/", 1)[0] else rest
            return f"{scheme}://{host_and_path.split('?', 1)[0]}"
        head, colon, path = url.partition(":")
        if colon and "/" not in head:  # scp-like `user@host:path`: the ssh URL it means
            return f"ssh://{head.rpartition('@')[2]}/{path.lstrip('/')}"
        return (root / url).resolve().as_uri()  # a local path, maybe relative
    return root.resolve().as_uri()


class Sequencer:
    """Orders the events of each run (key: run id or queue entry) across the processes
    that send them — `tether run --queue` sends `queued`, a worker the rest, a later
    attempt's worker more: each event's number is the wall clock in nanoseconds, made
    strictly greater than the run's previous one in this process. A per-process count
    from 1 gave the queued event and the worker's first the same number."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def next(self, run: str) -> int:
        with self._lock:
            value = max(self._clock(), self._last.get(run, 0) + 1)
            self._last[run] = value
            return value


def new_event(kind: str, *, source: str, subject: str, data: dict[str, Any],
              sequence: int, at: float | None = None) -> dict[str, Any]:
    """One `dev.tether.run.<kind>` CloudEvent (`dev.tether.<kind>` for the kinds in
    `OTHER_TYPES`), as its structured JSON object."""
    if kind not in TYPES and kind not in OTHER_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    when = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return {
        "specversion": SPECVERSION,
        "id": uuid.uuid4().hex,
        "source": source,
        "type": PREFIX + kind if kind in TYPES else f"dev.tether.{kind}",
        "subject": subject,
        "time": when.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "sequence": f"{sequence:020d}",  # equal widths: lexicographic = numeric order
        "data": data,
    }


def append_local(root: Path, event: dict[str, Any]) -> None:
    """Append `event` to `.tether/events.jsonl` (one line, one write)."""
    path = events_path(root)
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass  # events never fail a run


def to_http(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """Headers and body of `event` in HTTP structured mode, through the SDK."""
    from cloudevents.core.bindings.http import to_structured_event
    from cloudevents.core.v1.event import CloudEvent

    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"].replace("Z", "+00:00"))
    message = to_structured_event(CloudEvent(attributes, event.get("data")))
    return dict(message.headers), message.body
