"""`tether data`: fetch, update and check the data sources declared in the spec."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "data", help="fetch, pin and update the declared data sources (`data:` in the spec)",
        description="Data sources are declared under `data:` in tether.yaml: a URL or path "
        "fetched into the cache, pinned in tether.lock by content hash and source identity "
        "(ETag, size, mtime), and put at `path` (see docs/spec.md). A run fetches what its "
        "stages need by itself; these commands do it on their own.",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch", help="put sources in place, fetching and pinning those not pinned yet",
        description="Put each source (all, or those named) at its path: from the cache, "
        "the artifact remote, or the source itself (verified against the pin in "
        "tether.lock; pinned there when it was not). Never accepts a changed source.",
    )
    update = actions.add_parser(
        "update", help="accept sources that changed: fetch them again and re-pin",
        description="Ask each source (all, or those named) whether it changed since it was "
        "pinned (ETag, size, mtime); fetch the ones that did and pin their new hash in "
        "tether.lock (commit it). Stages that depend on them then run again.",
    )
    status = actions.add_parser(
        "status", help="say, per source, whether it is pinned and whether it changed",
        description="One metadata request per pinned source (no download).",
    )
    for action in (fetch, update):
        action.add_argument("names", nargs="*", metavar="NAME")
    parser.set_defaults(handler=handle)
    for action in (fetch, update, status):
        action.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.cache.hashing import StatCache
    from tether.execute.sources import (
        ensure_sources,
        project_access,
        select_sources,
        source_report,
        update_sources,
    )
    from tether.gitstore.git import find_root
    from tether.layout import tmp_dir
    from tether.project import ensure_state_dir, load_project_pipeline, object_store

    root = find_root(args.cwd)
    ensure_state_dir(root)
    pipeline = load_project_pipeline(root, None)
    store = object_store(root)
    if args.data_action == "status":
        select_sources(pipeline, [])
        for name, state in source_report(root, pipeline, store, project_access(root)):
            print(f"{name}: {state}")
        return 0
    from tether.cli.progress import ProgressBar

    sources = select_sources(pipeline, args.names)
    work = ensure_sources if args.data_action == "fetch" else update_sources
    hashes = StatCache(tmp_dir(root) / "statcache.db")
    try:
        with ProgressBar("fetch", unit="bytes", erase=True) as bar:
            done = work(root, sources, store, hashes, project_access(root, lambda name: bar))
    finally:
        hashes.close()
    for name, how in done:
        print(f"{name}: {how}")
    if any(how not in ("up to date", "unchanged", "restored from the cache")
           for _, how in done):
        print("tether: commit tether.lock: it pins what was fetched", file=sys.stderr)
    return 0
