"""What every request passes before it reaches the API: one ASGI middleware.

- The Host header must name the host the server is bound to (or a loopback name when
  it is bound to loopback): a page of another site whose DNS name was rebound to
  127.0.0.1 sends its own name, and is refused (DNS-rebinding defence).
- With a token (required off loopback), a request needs the `tether_token` cookie or
  `?token=` (which sets the cookie, so the links of the page keep working).
- A write (any method but GET/HEAD/OPTIONS) needs the header `X-Tether-CSRF` equal to
  the server's CSRF token, which a page of another origin cannot read (double submit:
  the token is also in the `tether_csrf` cookie); `--read-only` refuses every write.
- Every response says `Content-Security-Policy`, `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.web.responses import forbidden

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "frame-ancestors 'none'")
TOKEN_COOKIE = "tether_token"
CSRF_COOKIE = "tether_csrf"
CSRF_HEADER = "x-tether-csrf"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine only."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host of a Host header, without its port (IPv6 brackets removed)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class Policy:
    """Who may ask what of a server bound to `host`."""

    def __init__(self, host: str, *, token: str | None, csrf: str, read_only: bool) -> None:
        self.host = host.strip("[]")
        self.token = token
        self.csrf = csrf
        self.read_only = read_only

    def host_allowed(self, header: str) -> bool:
        name = _host_name(header).lower()
        if is_loopback(self.host):
            return is_loopback(name)
        if self.host in ("0.0.0.0", "::"):  # every interface: the token guards it
            return bool(name)
        return name in (self.host.lower(), *LOOPBACK_NAMES)

    def problem(self, request: Request) -> str | None:
        """Why `request` is refused, or None."""
        if not self.host_allowed(request.headers.get("host", "")):
            return "unexpected Host header: open the viewer at the address `tether view` printed"
        if self.token is not None:
            given = request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "a token is required: open the URL with ?token= that `tether view` printed"
        if request.method not in _READS:
            if self.read_only:
                return "the viewer is read-only (tether view --read-only)"
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf.encode()):
                return "missing or wrong X-Tether-CSRF header (GET /api/session gives the token)"
        return None


class Guard:
    """The ASGI middleware enforcing a Policy and adding the security headers."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        problem = self.policy.problem(request)
        if problem is not None:
            await _with_headers(forbidden(problem), scope, receive, send, None)
            return
        token = self.policy.token if "token" in request.query_params else None
        await self.app(scope, receive, _header_adder(send, token))


def _add_headers(message: Message, token: str | None) -> None:
    headers = MutableHeaders(scope=message)
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if token is not None:
        headers.append("Set-Cookie", f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")


def _header_adder(send: Send, token: str | None) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            _add_headers(message, token)
        await send(message)

    return sender


async def _with_headers(response: Any, scope: Scope, receive: Receive, send: Send,
                        token: str | None) -> None:
    await response(scope, receive, _header_adder(send, token))
