"""`tether view`: serve the web viewer of this repository's experiments."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from tether.errors import MissingExtraError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "view",
        help="open the web viewer: experiments table, plots, live runs, the queue",
        description="Serve a web viewer of this repository's experiments (and its JSON API, "
        "docs/view.md) until Ctrl-C, and open it in the browser. It listens on loopback "
        "only unless --host says otherwise; off loopback anyone on the network could reach "
        "it, so a token is required (--token, or one is generated and printed in the URL). "
        "Needs the extra: pip install 'tether[view]'.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port to listen on; 0 picks a free one (default 8765)")
    parser.add_argument("--no-open", dest="open_browser", action="store_false",
                        help="do not open the browser")
    parser.add_argument("--token", help="require this token (?token= once, then a cookie)")
    parser.add_argument("--read-only", action="store_true",
                        help="refuse every change (queue kill, retry, remove)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    try:
        from tether.web.server import ServeOptions, needs_token, serve
    except ImportError as exc:
        raise MissingExtraError(f"tether view needs its extra ({exc.name} is missing): "
                                "pip install 'tether[view]'") from None
    token = args.token
    if token is None and needs_token(args.host):
        token = secrets.token_urlsafe(18)
        print(f"tether: {args.host} is reachable from other machines: the viewer requires "
              "the token in this URL", file=sys.stderr)
    options = ServeOptions(args.host, args.port, token=token, read_only=args.read_only,
                           open_browser=args.open_browser)

    def listening(url: str) -> None:
        print(f"tether: viewing {root.name} at {url} (Ctrl-C stops)", flush=True)

    serve(root, options, listening)
    return 0
