"""The built front-end (`static/`, made by `npm --prefix web run build`), served as an SPA.

Files come only from the package's `static/` directory (Starlette's StaticFiles refuses
paths that leave it); any other path that is not under `/api/` gets `index.html`, so
the page's own routes survive a reload. Without a build, a short page says how to make one.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
NOT_BUILT = """<!doctype html>
<html><head><meta charset="utf-8"><title>tether view</title></head>
<body><h1>tether view</h1>
<p>The front-end is not built: run <code>make demo</code>, or
<code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>.</p>
<p>The JSON API works without it: <a href="/api/session">/api/session</a>,
<a href="/api/experiments">/api/experiments</a> (see docs/view.md).</p>
</body></html>
"""


class SinglePage(StaticFiles):
    """Static files, with `index.html` for unknown paths, or the not-built page."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self.root = directory

    async def check_config(self) -> None:
        """Nothing to check: a missing build gets the not-built page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not (self.root / "index.html").is_file():
            return HTMLResponse(NOT_BUILT)
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.startswith("api/"):
                raise
            return await super().get_response("index.html", scope)
