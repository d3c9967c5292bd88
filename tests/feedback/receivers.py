"""Real receivers on loopback: an HTTP server (json:// and webhooks) and an SMTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes, status: int) -> None:
        self.path = path
        self.headers = headers
        self.body = body
        self.status = status  # what the receiver answered
        self.at = time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPReceiver:
    """Records every POST; answers from `script` ((status, headers) per request), then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.delays: list[float] = []  # seconds before answering, per request
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.changed:
                    status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, status))
                    receiver.changed.notify_all()
                delay = 0.0
                with receiver.changed:
                    if receiver.delays:
                        delay = receiver.delays.pop(0)
                if delay:
                    time.sleep(delay)  # a slow receiver, not a timing assertion
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status < 300]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until `count` requests were accepted (or the timeout passes)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.accepted) >= count, timeout)
            return list(self.accepted)

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def http_receiver() -> Iterator[HTTPReceiver]:
    receiver = HTTPReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPReceiver:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        with self.changed:
            self.messages.append(message_from_bytes(envelope.content))
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Any]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@contextmanager
def smtp_receiver() -> Iterator[tuple[SMTPReceiver, int]]:
    from aiosmtpd.controller import Controller

    handler = SMTPReceiver()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()
