"""`tether notify test|status`: check where notifications go, and what happened to them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tether.errors import RemoteError, UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "notify",
        help="send a test notification, or show recent deliveries and failures",
        description="Notifications go to the apprise URLs of `notify.urls` in "
        ".tether/config.yaml and .tether/config.local.yaml (URLs with credentials: 0600, "
        "never committed) and of TETHER_NOTIFY (whitespace-separated), for the events of "
        "`notify.on` (default: failed, stalled, timeout, interrupted, regressed, reminder, "
        "lost, not-reproduced; add finished or succeeded to hear of every run).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="send a test message to every URL; say which failed")
    test.set_defaults(handler=handle_test)
    status = actions.add_parser("status", help="configured URLs (masked) and recent deliveries")
    status.add_argument("-n", type=int, default=20, metavar="N",
                        help="show the last N deliveries (default 20)")
    status.add_argument("--failed", action="store_true", help="show failed deliveries only")
    status.set_defaults(handler=handle_status)


def handle_test(args: argparse.Namespace) -> int:
    from tether.feedback.delivery import send_notice
    from tether.feedback.listeners import notice_for_test
    from tether.feedback.notify import display_url, load_settings
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    settings = load_settings(root)
    for problem in settings.problems:
        print(f"tether: warning: {problem}", file=sys.stderr)
    if not settings.urls:
        raise UsageError("no notification URLs configured",
                         hint="add `notify: {urls: [...]}` to .tether/config.local.yaml, or set "
                         "TETHER_NOTIFY='json://host/path mailto://...'")
    from tether.feedback.delivery import scrub_error

    notice = notice_for_test(settings)
    failed = []
    for url in settings.urls:
        result = send_notice(url, notice)
        if result.ok:
            print(f"✔ {display_url(url)}")
        else:
            failed.append(url)
            print(f"✘ {display_url(url)}: {scrub_error(result.error, url)}")
    if failed:
        raise RemoteError(f"{len(failed)} of {len(settings.urls)} notification URL(s) failed",
                          hint="check the URL (apprise syntax) and that the service is "
                          "reachable from here")
    return 0


def handle_status(args: argparse.Namespace) -> int:
    from tether.feedback.delivery import read_journal
    from tether.feedback.notify import display_url, load_settings
    from tether.gitstore.git import find_root

    root = find_root(args.cwd)
    settings = load_settings(root)
    for problem in settings.problems:
        print(f"tether: warning: {problem}", file=sys.stderr)
    print("notify:", ", ".join(display_url(u) for u in settings.urls) or "no URLs")
    print("on:", ", ".join(sorted(settings.on)))
    if settings.sinks or settings.events_file:
        sinks = [display_url(u) for u in settings.sinks]
        if settings.events_file:
            sinks.append(".tether/events.jsonl")
        print("events:", ", ".join(sinks))
    entries = [e for e in read_journal(root) if not args.failed or not e.get("ok")]
    if not entries:
        print("no deliveries yet" if not args.failed else "no failed deliveries")
        return 0
    for entry in entries[-max(1, args.n):]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry.get("at", 0))))
        mark = "✔" if entry.get("ok") else "✘"
        error = f": {entry['error']}" if entry.get("error") else ""
        print(f"{when} {mark} {entry.get('event')} {entry.get('id')} → {entry.get('url')} "
              f"(attempts {entry.get('attempts')}){error}")
    return 0
