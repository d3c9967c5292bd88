"""`/api/queue` and its actions (kill, retry, remove), over `queue/client.py`.

Both backends (embedded SQLite, Celery) answer through the same client functions as
`tether queue`. Workers are every live one (its announcement, renewed with each
heartbeat, has not run out), busy or idle, with the queues it serves and its tags; a
waiting entry says why no live worker can take it. In `--read-only` the look writes
nothing: expired leases are left for a worker or `tether queue status` to requeue, and
a project without a queue yet gets none made.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from tether.errors import UsageError
from tether.web.responses import JSON
from tether.web.state import viewer_of

ACTIONS = ("kill", "retry", "remove")


def _entry_json(row: Any) -> dict[str, Any]:
    e = row.entry
    return {
        "id": e.id, "name": e.name, "state": e.state, "attempt": e.attempt,
        "worker": e.worker, "host": row.host, "elapsed": row.elapsed,
        "silence": row.since_output, "retries": max(0, e.attempt - 1),
        "queued_at": e.created_at, "queue": e.queue, "status": e.status,
        "error": e.error, "ref": e.result_ref, "kill_requested": e.kill_requested,
        "requires": list(e.requires), "blocked": row.blocked,
    }


def _workers_json(live: list[Any], rows: list[Any]) -> list[dict[str, Any]]:
    """Every live worker, busy ones with their entries and their lease's last renewal."""
    busy: dict[str, list[Any]] = {}
    for row in rows:
        if row.entry.worker and row.entry.state == "running":
            busy.setdefault(row.entry.worker, []).append(row.entry)
    found = []
    for worker in live:
        held = busy.pop(worker.id, [])
        found.append(_worker_json(worker.id, held, list(worker.queues), list(worker.tags),
                                  worker.until, worker.seen))
    for worker_id, held in sorted(busy.items()):  # its announcement ran out: lease only
        found.append(_worker_json(worker_id, held, sorted({e.queue for e in held}), [], None,
                                  None))
    return found


def _worker_json(worker_id: str, held: list[Any], queues: list[str], tags: list[str],
                 until: float | None, seen: float | None) -> dict[str, Any]:
    """`last_heartbeat`: the newest of its presence announcement and its leases' renewals."""
    beats = [e.heartbeat_at for e in held if e.heartbeat_at is not None]
    beats += [seen] if seen is not None else []
    return {"id": worker_id, "host": worker_id.rsplit(":", 1)[0],
            "state": "busy" if held else "idle", "entries": [e.id for e in held],
            "queues": queues, "tags": tags, "until": until,
            "last_heartbeat": max(beats) if beats else None}


def queue(request: Request) -> JSON:
    from tether.layout import queue_db
    from tether.queue.client import backend_name, open_queue, status

    viewer = viewer_of(request)
    root, read_only = viewer.root, viewer.policy.read_only
    name = backend_name(root)
    if read_only and name == "embedded" and not queue_db(root).exists():
        return JSON({"entries": [], "workers": [], "backend": name})
    now = time.time()
    backend = open_queue(root)
    try:
        rows = status(root, backend, now, requeue=not read_only)
        live = backend.live_workers(now)
    finally:
        backend.close()
    return JSON({"entries": [_entry_json(row) for row in rows],
                 "workers": _workers_json(live, rows), "backend": name})


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
