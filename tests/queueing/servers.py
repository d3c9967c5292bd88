"""Private redis-server and rabbitmq-server instances on free loopback ports.

Never the machine's shared services: each server here has its own port, data
folder and (for RabbitMQ) node name, Erlang distribution port, epmd port and
cookie, so tests can stop, kill and restart them freely. Persistence is on
(Redis: append-only file; RabbitMQ: durable queues and persistent messages).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_SERVER = (str(RABBITMQ_BIN / "rabbitmq-server")
                   if (RABBITMQ_BIN / "rabbitmq-server").exists() else None)
EPMD = shutil.which("epmd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} in {timeout}s:\n{log.read_text()[-3000:]}")


class RedisServer:
    """redis-server on a free port with AOF persistence in `folder`.

    Optionally with a password (`--requirepass`) and a unix socket in `folder`.
    """

    def __init__(self, folder: Path, *, password: str | None = None,
                 unix_socket: bool = False) -> None:
        assert REDIS_SERVER is not None
        self.folder = folder
        self.password = password
        self.unix_socket = unix_socket
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket(self) -> Path:
        return self.folder / "redis.sock"

    def start(self) -> None:
        log = self.folder / "redis.log"
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--daemonize", "no", "--logfile", str(log),
             *(["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
               if self.unix_socket else []),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 20, self.proc, log)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: redis flushes its append-only file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class RabbitServer:
    """A private RabbitMQ node: own node name, ports, epmd, cookie, data and config."""

    def __init__(self, folder: Path, *, consumer_timeout_ms: int | None = None) -> None:
        assert RABBITMQ_SERVER is not None
        self.folder = folder
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"tethertest{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        conf = ["loopback_users = none"]
        if consumer_timeout_ms is not None:
            conf.append(f"consumer_timeout = {consumer_timeout_ms}")
        (folder / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        # Check consumer timeouts every second instead of every minute.
        (folder / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / ".erlang.cookie").write_text("TETHERTESTCOOKIE")
        (folder / ".erlang.cookie").chmod(0o400)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        folder = str(self.folder)
        return {
            **os.environ, "HOME": folder, "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia", "RABBITMQ_LOG_BASE": f"{folder}/log",
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{folder}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{folder}/rabbit.pid",
        }

    def start(self) -> None:
        log = self.folder / "server.out"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(RABBITMQ_SERVER)], env=self.env(), stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.folder)
        _wait_for_port(self.port, 90, self.proc, log)

    def ctl(self, *args: str) -> str:
        proc = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
                              env=self.env(), capture_output=True, text=True, timeout=60)
        return proc.stdout + proc.stderr

    def stop(self) -> None:
        """A clean stop: durable queues and persistent messages survive it."""
        if self.proc is not None and self.proc.poll() is None:
            self.ctl("stop")
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if EPMD is not None:  # the node started a private epmd on our port: end it
            subprocess.run([EPMD, "-port", str(self.epmd_port), "-kill"],
                           env=self.env(), capture_output=True, timeout=30, check=False)
