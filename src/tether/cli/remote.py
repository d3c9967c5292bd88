"""`tether remote add|list|remove`: artifact remotes (where outputs are pushed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.errors import UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "remote", help="add, list or remove artifact remotes",
        description="Artifact remotes hold cached outputs and run-cache entries: a local "
        "path, file://, s3://, gs://, sftp:// or (read-only) http(s)://. They are kept in "
        ".tether/config.yaml (committed) or, with --local, .tether/config.local.yaml. "
        "Credentials come from each backend's usual mechanism and are never committed.",
    )
    actions = parser.add_subparsers(dest="remote_action", metavar="ACTION")
    add = actions.add_parser("add", help="add (or replace) a remote")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--default", action="store_true", help="make it the default remote")
    add.add_argument("--local", action="store_true",
                     help="keep it in .tether/config.local.yaml (never committed)")
    add.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                     help="a backend option, e.g. -o endpoint_url=http://127.0.0.1:9000")
    actions.add_parser("list", help="list remotes (the default marked *)")
    remove = actions.add_parser("remove", help="remove a remote")
    remove.add_argument("name")
    parser.set_defaults(handler=handle)


def _options(pairs: list[str]) -> dict[str, Any]:
    from tether.yamledit import NOTHING, parse_scalar

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-o {pair!r}: expected KEY=VALUE")
        typed = parse_scalar(value)
        options[key] = value if typed is NOTHING else typed
    return options


def handle(args: argparse.Namespace) -> int:
    from tether import config
    from tether.gitstore.git import find_root
    from tether.urls import mask_urls

    root = find_root(args.cwd)
    if args.remote_action == "add":
        added = config.set_remote(root, args.name, args.url, default=args.default,
                                  local=args.local, options=_options(args.option))
        where = "config.local.yaml" if args.local else "config.yaml"
        mark = " (default)" if added.default else ""
        print(f"tether: remote {added.name} -> {mask_urls(added.url)}{mark} in .tether/{where}",
              file=sys.stderr)
    elif args.remote_action == "remove":
        config.remove_remote(root, args.name)
        print(f"tether: removed remote {args.name}", file=sys.stderr)
    else:
        for remote in config.list_remotes(root):
            mark = "*" if remote.default else " "
            local = "  (local)" if remote.local else ""
            print(f"{mark} {remote.name}\t{mask_urls(remote.url)}{local}")
    return 0
