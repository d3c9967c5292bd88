"""`/api/queue` and its actions (kill, retry, remove), over `queue/client.py`.

Both backends (embedded SQLite, Celery) answer through the same client functions as
`tether queue`. Workers are those holding an entry now, with their last heartbeat: the
queue keeps no separate roster of idle workers.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from tether.errors import UsageError
from tether.web.responses import JSON
from tether.web.state import viewer_of

ACTIONS = ("kill", "retry", "remove")


def queue(request: Request) -> JSON:
    from tether.queue.client import backend_name, open_queue, status

    root = viewer_of(request).root
    now = time.time()
    backend = open_queue(root)
    try:
        rows = status(root, backend, now)
    finally:
        backend.close()
    entries: list[dict[str, Any]] = []
    workers: dict[str, dict[str, Any]] = {}
    for row in rows:
        e = row.entry
        entries.append({
            "id": e.id, "name": e.name, "state": e.state, "attempt": e.attempt,
            "worker": e.worker, "host": row.host, "elapsed": row.elapsed,
            "silence": row.since_output, "retries": max(0, e.attempt - 1),
            "queued_at": e.created_at, "queue": e.queue, "status": e.status,
            "error": e.error, "ref": e.result_ref, "kill_requested": e.kill_requested,
        })
        if e.worker and e.state == "running":
            workers[e.worker] = {"id": e.worker, "host": row.host,
                                 "last_heartbeat": e.heartbeat_at, "state": "busy"}
    return JSON({"entries": entries, "workers": list(workers.values()),
                 "backend": backend_name(root)})


def act(request: Request) -> JSON:
    """POST /api/queue/ENTRY/ACTION (the security middleware checked CSRF and read-only)."""
    from tether.queue.client import kill, open_queue, remove, resolve_entries, retry

    viewer = viewer_of(request)
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise UsageError(f"unknown queue action {action!r}: use {', '.join(ACTIONS)}")
    backend = open_queue(viewer.root)
    try:
        entries = resolve_entries(backend, [request.path_params["entry"]])
        if action == "kill":
            done = kill(backend, entries)
        elif action == "retry":
            done = retry(viewer.root, backend, entries)
        else:
            done = remove(viewer.root, backend, entries)
    finally:
        backend.close()
    return JSON({"ok": True, "entries": [{"id": e.id, "name": e.name, "state": e.state}
                                         for e in done]})
