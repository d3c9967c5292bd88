"""A minimal Redis client: RESP2 over a plain socket, for the enqueue path only.

Why it exists: `tether run --queue` on the Celery backend writes a handful of keys
to Redis and exits. Importing redis-py alone costs about 80 ms (its package imports
asyncio, ssl and importlib.metadata), more than everything else an enqueue does;
this module speaks just enough of the protocol for `tether.queue.celery.keys`:
commands, pipelines (optionally in MULTI/EXEC), and AUTH/SELECT from the URL.
Workers and the other queue commands use redis-py (`tether.queue.celery.state`).

URLs: `redis://[[user]:password@]host[:port][/db]` and
`unix://[[user]:password@]/path/to/socket[?db=N]`. TLS (`rediss://`) is not spoken
here: `supports(url)` says so, and the caller uses redis-py instead.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Arg = str | bytes | int | float
Command = tuple[Arg, ...]


class ReplyError(Exception):
    """The server answered a command with an error (`-ERR ...`, `-WRONGPASS ...`)."""


def supports(url: str) -> bool:
    """Whether this client can talk to `url` (plain TCP or a unix socket, no TLS)."""
    return urlsplit(url).scheme.lower() in ("redis", "unix")


def _encode(command: Command) -> bytes:
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespClient:
    """One connection to a Redis server, opened on first use and reopened after a failure.

    Connection failures raise `OSError` (`ConnectionError` when the server hung up or
    is still loading its data set): the caller decides whether to retry.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("redis", "unix"):
            raise ValueError(f"{url!r}: only redis:// and unix:// URLs are spoken here")
        query = parse_qs(parts.query)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.path = unquote(parts.path)  # the socket of a unix:// URL
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        db = query.get("db", [""])[0]
        if self.scheme == "redis" and self.path.strip("/"):
            db = self.path.strip("/")
        self.db = int(db or 0)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def execute(self, commands: Sequence[Command], *, transaction: bool = False) -> list[Any]:
        """Send the commands in one write and return their replies (EXEC's, in a transaction).

        An error reply raises `ReplyError` once every reply has been read.
        """
        if transaction:
            replies = self._round_trip([("MULTI",), *commands, ("EXEC",)])
            executed = replies[-1]
            if executed is None:
                raise ReplyError("EXECABORT the transaction was discarded")
            return list(executed)
        return self._round_trip(commands)

    def close(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
        self._sock = self._reader = None

    # -- plumbing ---------------------------------------------------------

    def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(b"".join(_encode(command) for command in commands))
            replies = [self._read() for _ in commands]
        except OSError:
            self.close()
            raise
        errors = [reply for reply in replies if isinstance(reply, ReplyError)]
        errors += [item for reply in replies if isinstance(reply, list)
                   for item in reply if isinstance(item, ReplyError)]
        if errors:
            message = str(errors[0])
            if message.startswith("LOADING"):
                self.close()
                raise ConnectionError(message)
            raise errors[0]
        return replies

    def _connect(self) -> None:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self._sock, self._reader = sock, sock.makefile("rb")
        hello: list[Command] = []
        if self.password is not None:
            hello.append(("AUTH", self.password) if self.username is None
                         else ("AUTH", self.username, self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        if hello:
            try:
                self._round_trip(hello)
            except ReplyError:
                self.close()  # not logged in (or no such db): never reuse this connection
                raise

    def _read(self) -> Any:
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self._reader.read(length + 2)
            if len(data) != length + 2:
                raise ConnectionError("the server closed the connection")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise ConnectionError(f"not a RESP2 reply: {line[:40]!r}")
