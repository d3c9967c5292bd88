"""Serve the viewer with uvicorn: bind first (so `--port 0` knows its port), then serve."""

from __future__ import annotations

import socket
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from tether.errors import UsageError
from tether.web.security import is_loopback


class ServeOptions:
    """How `tether view` serves: where, with which token, whether writes are allowed."""

    __slots__ = ("host", "open_browser", "port", "read_only", "token")

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, token: str | None = None,
                 read_only: bool = False, open_browser: bool = True) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.read_only = read_only
        self.open_browser = open_browser


def needs_token(host: str) -> bool:
    """Off loopback, anyone on the network could reach the viewer: a token is required."""
    return not is_loopback(host)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="choose another --port (0 picks a free one) or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    suffix = f"/?token={quote(token)}" if token else "/"
    return f"http://{shown}:{port}{suffix}"


def serve(root: Path, options: ServeOptions, on_listening: Callable[[str], None]) -> None:
    """Serve until interrupted; `on_listening(url)` is told the URL once bound."""
    import uvicorn

    from tether.web.app import create_app

    app = create_app(root, host=options.host, token=options.token,
                     read_only=options.read_only)
    sock = bind(options.host, options.port)
    try:
        url = url_of(options.host, sock.getsockname()[1], options.token)
        on_listening(url)
        if options.open_browser:
            threading.Timer(0.3, webbrowser.open, args=(url,)).start()
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
