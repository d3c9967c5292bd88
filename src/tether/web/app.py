"""The viewer's Starlette application: routes, error handling, security, static files."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route

from tether.errors import TetherError
from tether.web import comparing, detail, listing, queueing, steps, stream
from tether.web.catalog import Catalog
from tether.web.responses import JSON, error_json, tether_error
from tether.web.security import Guard, Policy
from tether.web.state import Viewer
from tether.web.static import STATIC_DIR, SinglePage


def _routes(static_dir: Path) -> list[BaseRoute]:
    return [
        Route("/api/session", listing.session),
        Route("/api/experiments", listing.experiments),
        Route("/api/experiments/{name}", detail.experiment),
        Route("/api/experiments/{name}/logs", detail.logs),
        Route("/api/experiments/{name}/live", stream.live),
        Route("/api/steps", steps.steps),
        Route("/api/compare", comparing.compare_experiments),
        Route("/api/queue", queueing.queue),
        Route("/api/queue/{entry}/{action}", queueing.act, methods=["POST"]),
        Route("/api/{rest:path}", _unknown_api, methods=["GET", "POST", "HEAD"]),
        Mount("/", app=SinglePage(static_dir)),
    ]


def _unknown_api(request: Request) -> JSON:
    return error_json(f"no such API endpoint: {request.url.path}", status=404, code=2)


async def _tether_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, TetherError)
    return tether_error(exc)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Read the index into memory while the browser opens, not when the table asks."""
    viewer: Viewer = app.state.viewer
    threading.Thread(target=viewer.catalog.warm, daemon=True).start()
    yield


def create_app(
    root: Path, *, host: str = "127.0.0.1", token: str | None = None, read_only: bool = False,
    csrf: str | None = None, catalog: Catalog | None = None, static_dir: Path = STATIC_DIR,
    live_poll: float = 0.25,
) -> Starlette:
    """The viewer of the repository at `root`, as served on `host`."""
    policy = Policy(host, token=token, csrf=csrf or secrets.token_urlsafe(24),
                    read_only=read_only)
    app = Starlette(
        routes=_routes(static_dir),
        middleware=[Middleware(Guard, policy=policy)],
        exception_handlers={TetherError: _tether_error},
        lifespan=_lifespan,
    )
    app.state.viewer = Viewer(root, catalog or Catalog(root), policy, live_poll=live_poll)
    return app
