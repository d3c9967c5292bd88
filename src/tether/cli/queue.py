"""`tether queue status|logs|kill|remove|retry`: look after queued experiments."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tether.errors import UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "queue",
        help="inspect and manage queued experiments (tether run --queue adds them)",
        description="Queued experiments: their state (queued running done failed retrying "
        "cancelled), logs, and kill/remove/retry. Add entries with `tether run --queue`; run "
        "them with `tether worker`.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    status = actions.add_parser("status", help="one line per entry")
    status.add_argument("--json", action="store_true", help="print JSON lines")
    logs = actions.add_parser("logs", help="an entry's output (every attempt)")
    logs.add_argument("id", metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it ends")
    logs.add_argument("--attempt", type=int, help="only this attempt (default: all)")
    kill = actions.add_parser("kill", help="cancel a waiting entry or stop a running one")
    kill.add_argument("ids", nargs="+", metavar="ID")
    for name, helptext in (("remove", "forget entries (not running) and their logs"),
                           ("retry", "queue failed or cancelled entries again")):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("ids", nargs="*", metavar="ID")
        action.add_argument("--failed", action="store_true", help="every failed entry")
        if name == "remove":
            action.add_argument("--done", action="store_true", help="every done entry")
            action.add_argument("--cancelled", action="store_true",
                                help="every cancelled entry")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import find_root
    from tether.queue.client import open_queue

    if args.action is None:
        raise UsageError("say what to do: tether queue status|logs|kill|remove|retry")
    root = find_root(args.cwd)
    backend = open_queue(root)
    try:
        handler = {"status": _status, "logs": _logs, "kill": _kill, "remove": _remove,
                   "retry": _retry}[args.action]
        code: int = handler(root, backend, args)
        return code
    finally:
        backend.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _status(root: Any, backend: Any, args: argparse.Namespace) -> int:
    import json

    from tether.queue.client import status

    rows = status(root, backend)
    if args.json:
        for row in rows:
            e = row.entry
            print(json.dumps({"id": e.id, "name": e.name, "run_id": e.run_id,
                              "state": e.state, "queue": e.queue,
                              "priority": e.priority, "host": row.host, "attempt": e.attempt,
                              "elapsed": row.elapsed, "since_output": row.since_output,
                              "status": e.status, "ref": e.result_ref, "error": e.error}))
        return 0
    if not rows:
        print("tether: the queue is empty", file=sys.stderr)
        return 0
    header = ("ID", "EXPERIMENT", "STATE", "QUEUE", "HOST", "TRY", "ELAPSED", "SILENT", "NOTE")
    table = [header]
    for row in rows:
        e = row.entry
        note = e.error or (e.status or "") if e.state != "running" else ""
        table.append((e.id, e.name, e.state, e.queue, row.host or "-", str(e.attempt),
                      _age(row.elapsed), _age(row.since_output), note))
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def _logs(root: Any, backend: Any, args: argparse.Namespace) -> int:
    from tether.queue.base import FINAL
    from tether.queue.client import resolve_entries

    entry = resolve_entries(backend, [args.id])[0]
    attempts = [args.attempt] if args.attempt else list(range(1, entry.attempt + 1))
    out = sys.stdout.buffer
    for number in attempts:
        if len(attempts) > 1:
            out.write(f"==> {entry.id} {entry.name} · attempt {number} <==\n".encode())
        out.write(backend.read_log(entry.id, number).data)
        out.flush()
    if not args.follow:
        return 0
    number, offset = (attempts[-1] if attempts else 1), 0
    offset = backend.read_log(entry.id, number).offset
    while True:
        chunk = backend.read_log(entry.id, number, offset)
        out.write(chunk.data)
        out.flush()
        offset = chunk.offset
        current = backend.get(entry.id)
        if current is None or (current.state in FINAL and not chunk.data):
            return 0
        if current.attempt != number and not chunk.data:
            number, offset = current.attempt, 0
            out.write(f"==> attempt {number} <==\n".encode())
        time.sleep(0.3)


def _kill(root: Any, backend: Any, args: argparse.Namespace) -> int:
    from tether.queue.client import kill, resolve_entries

    for after in kill(backend, resolve_entries(backend, args.ids)):
        what = "cancelled" if after.state == "cancelled" else "stop requested"
        print(f"tether: {after.id} {after.name}: {what}", file=sys.stderr)
    return 0


def _remove(root: Any, backend: Any, args: argparse.Namespace) -> int:
    from tether.queue.client import remove, resolve_entries

    states = [s for s, on in (("done", args.done), ("failed", args.failed),
                              ("cancelled", args.cancelled)) if on]
    if not args.ids and not states:
        raise UsageError("name entries to remove, or --done / --failed / --cancelled")
    removed = remove(root, backend, resolve_entries(backend, args.ids, states))
    print(f"tether: removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}",
          file=sys.stderr)
    return 0


def _retry(root: Any, backend: Any, args: argparse.Namespace) -> int:
    from tether.queue.client import resolve_entries, retry

    if not args.ids and not args.failed:
        raise UsageError("name entries to retry, or --failed")
    chosen = resolve_entries(backend, args.ids, ["failed"] if args.failed else [])
    for entry in retry(root, backend, chosen):
        print(f"tether: {entry.id} queued again as {entry.name}", file=sys.stderr)
    return 0
