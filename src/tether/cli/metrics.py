"""`tether metrics`: Prometheus metrics of the queue and the experiments, read at scrape time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.errors import UsageError

DEFAULT_PORT = 9640


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "metrics",
        help="serve Prometheus metrics of the queue and the experiments",
        description="Serve /metrics in the Prometheus text format, or print it once. Every "
        "scrape reads the queue's state store and the experiment index, so the figures are "
        "exact however many workers or machines run (see docs/operations.md for the list). "
        "Needs tether[metrics].",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="PORT",
                        help=f"serve on this port (default {DEFAULT_PORT})")
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                        help="serve on this address (default 0.0.0.0: every interface)")
    parser.add_argument("--once", action="store_true",
                        help="print the metrics once on stdout and exit")
    parser.set_defaults(handler=handle)


def check_port(port: int, option: str = "--port") -> int:
    if not 0 <= port <= 65535:
        raise UsageError(f"{option} {port}: not a port number",
                         hint="give a port from 1 to 65535 (0: any free port)")
    return port


def handle(args: argparse.Namespace) -> int:
    import signal
    import threading

    from tether.gitstore.git import find_root
    from tether.obs.metrics import ProjectMetrics, exposition, open_for_scrapes, serve

    check_port(args.port)
    root = find_root(args.cwd)
    backend = open_for_scrapes(root)
    try:
        collector = ProjectMetrics(root, backend)
        if args.once:
            sys.stdout.write(exposition(collector))
            return 0
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop_serving = serve(collector, args.port, args.bind)
        try:
            from tether.logs import get_logger

            get_logger("tether.metrics").info("serving_metrics", url=f"http://{args.bind}:"
                                              f"{args.port}/metrics")
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            stop_serving()
        return 0
    finally:
        backend.close()
