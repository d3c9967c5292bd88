"""`tether schedule list|run`: the schedules of `.tether/config.yaml`, and firing one now."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# At exit, how long `schedule run` waits for its event to be delivered.
EVENT_WAIT = 5.0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schedule",
        help="list the schedules workers fire, or fire one now",
        description="Schedules live in git: `schedules:` in the committed .tether/config.yaml "
        "(cron: or every:, and run: {args: [...]} or repro: EXP; catchup: once|skip; "
        "timezone; queue). Running workers (`tether worker`, embedded or Celery) fire them: "
        "of any number of workers, exactly one enqueues each occurrence.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="each schedule, its next occurrence and the last one fired",
        description="Name, spec, action, next occurrence, and the last occurrence fired: "
        "when, by which worker (host:pid) and what it enqueued. Times are UTC.")
    listing.add_argument("--json", action="store_true", help="one JSON object per schedule")
    listing.set_defaults(handler=handle_list)
    run = actions.add_parser(
        "run", help="enqueue what a schedule does, once, now",
        description="Enqueue what schedule NAME does, now, once (its next occurrence "
        "still fires as usual).")
    run.add_argument("name", metavar="NAME", help="the schedule's name")
    run.set_defaults(handler=handle_run)


def handle_list(args: argparse.Namespace) -> int:
    from tether.feedback.scheduler import list_schedules
    from tether.feedback.schedules import iso
    from tether.gitstore.git import find_root
    from tether.queue.client import open_queue

    root = find_root(args.cwd)
    backend = open_queue(root)
    try:
        rows = list_schedules(root, backend)
    finally:
        backend.close()
    if args.json:
        for row in rows:
            last = row.last
            print(json.dumps({
                "name": row.schedule.name, "spec": row.schedule.spec, "what": row.schedule.what,
                "catchup": row.schedule.catchup, "queue": row.schedule.queue,
                "next": iso(row.next_at),
                "last": None if last is None else {
                    "occurrence": iso(last.occurrence), "worker": last.worker,
                    "claimed_at": iso(last.claimed_at), "result": last.result},
            }))
        return 0
    if not rows:
        print("no schedules (add them under schedules: in .tether/config.yaml)", file=sys.stderr)
        return 0
    for row in rows:
        schedule = row.schedule
        print(f"{schedule.name}: {schedule.spec}, {schedule.what} "
              f"(queue {schedule.queue}, catchup {schedule.catchup})")
        print(f"  next: {iso(row.next_at)}")
        last = row.last
        if last is None:
            print("  last: never fired")
        else:
            print(f"  last: {iso(last.occurrence)} by {last.worker}: "
                  f"{last.result or 'enqueueing...'}")
    return 0


def handle_run(args: argparse.Namespace) -> int:
    from tether.feedback.notify import load_settings
    from tether.feedback.scheduler import announce, run_now
    from tether.gitstore.git import find_root
    from tether.queue.client import open_queue

    root = find_root(args.cwd)
    backend = open_queue(root)
    try:
        fired = run_now(root, backend, args.name)
    finally:
        backend.close()
    for entry in fired.entries:
        print(f"{entry.id}  {entry.name}  {' '.join(entry.overrides)}".rstrip())
    settings = load_settings(root)
    if settings.sinks or settings.events_file:
        from tether.feedback.watch import Feedback

        feedback = Feedback(root, settings)
        announce(feedback, fired)
        feedback.close(EVENT_WAIT)
    print(f"tether: schedule {args.name}: {fired.result}", file=sys.stderr)
    return 0
