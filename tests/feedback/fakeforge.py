"""A loopback fake of the GitHub and GitLab REST endpoints `tether report --comment` uses.

A real HTTP server on 127.0.0.1 in a thread: it keeps comments in memory, checks the
token header the way each forge does, answers 403 to writes with the read-only token,
and logs every request (method, path, headers) for the tests to inspect.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WRITE_TOKEN = "ghp_WriteTokenValue0123456789abcdef"
READ_TOKEN = "ghp_ReadOnlyTokenValue0123456789abcd"

_GITHUB_LIST = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
_GITHUB_ONE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
_GITLAB_LIST = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes$")
_GITLAB_ONE = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)$")


class FakeForge:
    def __init__(self) -> None:
        self.comments: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._next = 100
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                forge.handle(self, "GET")

            def do_POST(self) -> None:
                forge.handle(self, "POST")

            def do_PATCH(self) -> None:
                forge.handle(self, "PATCH")

            def do_PUT(self) -> None:
                forge.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeForge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, body: str) -> int:
        self._next += 1
        self.comments[self._next] = {"id": self._next, "body": body}
        return self._next

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path, _, query = handler.path.partition("?")
        length = int(handler.headers.get("Content-Length") or 0)
        data = json.loads(handler.rfile.read(length)) if length else None
        self.requests.append({"method": method, "path": path, "query": query,
                              "headers": {k.lower(): v for k, v in handler.headers.items()},
                              "data": data})
        gitlab = path.startswith("/api/v4/")
        token = (handler.headers.get("PRIVATE-TOKEN") if gitlab else
                 (handler.headers.get("Authorization") or "").removeprefix("Bearer "))
        if token not in (WRITE_TOKEN, READ_TOKEN):
            return self._reply(handler, 401, {"message": "Bad credentials"})
        if method != "GET" and token == READ_TOKEN:
            return self._reply(handler, 403, {"message": "Resource not accessible by integration"})
        listing = (_GITLAB_LIST if gitlab else _GITHUB_LIST).match(path)
        single = (_GITLAB_ONE if gitlab else _GITHUB_ONE).match(path)
        if listing and method == "GET":
            page = int(dict(p.split("=") for p in query.split("&") if p).get("page", "1"))
            every = sorted(self.comments.values(), key=lambda c: c["id"])
            return self._reply(handler, 200, every[(page - 1) * 100:page * 100])
        if listing and method == "POST":
            number = self.add(data["body"])
            return self._reply(handler, 201, {**self.comments[number],
                                              "html_url": f"{self.url}/c/{number}"})
        if single and method in ("PATCH", "PUT"):
            number = int(single.groups()[-1])
            if number not in self.comments:
                return self._reply(handler, 404, {"message": "Not Found"})
            self.comments[number]["body"] = data["body"]
            return self._reply(handler, 200, self.comments[number])
        return self._reply(handler, 404, {"message": "Not Found"})

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)
