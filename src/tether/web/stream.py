"""`/api/experiments/NAME/live`: a running experiment's logs and steps as server-sent events.

The run's files are polled every `poll` seconds (a short interval: nothing here needs
inotify); only complete lines are sent until the run ends, then the rest. Events:
`log` {"stage", "lines"}, `step` {"metric", "points": [[step, value, wall time]]},
`status` {"status"}, and `end` once the run is recorded (or its process is gone).
A recorded experiment gets its status and `end` at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from tether.web.live import RunningRun, find_running
from tether.web.state import viewer_of


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (JSON data on one line: no newline can end it early)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _poll(run: RunningRun, log_offsets: dict[str, int], step_offsets: dict[str, int],
          final: bool) -> list[bytes]:
    events = [sse("log", {"stage": stage, "lines": lines})
              for stage, lines in run.new_lines(log_offsets, final=final)]
    events += [sse("step", {"metric": metric, "points": points})
               for metric, points in run.new_steps(step_offsets, final=final).items()]
    return events


async def _follow(request: Request, run: RunningRun, poll: float) -> AsyncIterator[bytes]:
    from anyio import to_thread

    log_offsets: dict[str, int] = {}
    step_offsets: dict[str, int] = {}
    yield sse("status", {"status": "running", "name": run.name, "run_id": run.run_id})
    while True:
        finished = await to_thread.run_sync(run.finished)
        for event in await to_thread.run_sync(_poll, run, log_offsets, step_offsets, finished):
            yield event
        if finished:
            yield sse("status", {"status": await to_thread.run_sync(run.final_status)})
            yield sse("end", {"name": run.name})
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(poll)


async def _recorded(status: str, name: str) -> AsyncIterator[bytes]:
    yield sse("status", {"status": status})
    yield sse("end", {"name": name})


async def live(request: Request) -> StreamingResponse:
    from anyio import to_thread

    from tether.web.detail import find_experiment

    viewer = viewer_of(request)
    name = request.path_params["name"]
    run = await to_thread.run_sync(find_running, viewer.root, name)
    if run is not None:
        body = _follow(request, run, viewer.live_poll)
    else:
        exp = await to_thread.run_sync(find_experiment, viewer, name)
        body = _recorded(exp.status, exp.name)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
