"""`tether schedule list|run`: the schedules of `.tether/config.yaml`, and firing one now."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.queue.base import Firing

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
        "list", help="each schedule, its next occurrence and when it last ran",
        description="Name, spec, action, next occurrence, and its last run: when, how "
        "(scheduled, or by hand with `schedule run`), by which worker or user (host:pid) "
        "and what it enqueued; when the last run was by hand, also the last scheduled "
        "occurrence. Times are UTC.")
    listing.add_argument("--json", action="store_true", help="one JSON object per schedule")
    listing.set_defaults(handler=handle_list)
    run = actions.add_parser(
        "run", help="enqueue what a schedule does, once, now",
        description="Enqueue what schedule NAME does, now, once. It is shown as the "
        "schedule's last run, by hand, in `schedule list`; it claims no occurrence, so the "
        "next one still fires as usual (and a missed one is still caught up).")
    run.add_argument("name", metavar="NAME", help="the schedule's name")
    run.set_defaults(handler=handle_run)


def handle_list(args: argparse.Namespace) -> int:
    from tether.feedback.scheduler import BY_HAND, SCHEDULED, list_schedules
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
            latest = row.latest
            print(json.dumps({
                "name": row.schedule.name, "spec": row.schedule.spec, "what": row.schedule.what,
                "catchup": row.schedule.catchup, "queue": row.schedule.queue,
                "next": iso(row.next_at),
                "last": None if latest is None else _run_json(*latest),
                "last_scheduled": None if row.last is None else _run_json(SCHEDULED, row.last),
                "last_by_hand": None if row.by_hand is None else _run_json(BY_HAND,
                                                                           row.by_hand),
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
        latest = row.latest
        if latest is None:
            print("  last: never ran")
            continue
        print(f"  last: {_run_text(*latest)}")
        if latest[0] == BY_HAND:  # what decides the next occurrence and the catch-up
            print("  last scheduled: " + (_run_text(SCHEDULED, row.last) if row.last
                                          else "never fired"))
    return 0


def _run_text(how: str, run: Firing) -> str:
    from tether.feedback.schedules import iso

    return f"{iso(run.occurrence)} {how} by {run.worker}: {run.result or 'enqueueing...'}"


def _run_json(how: str, run: Firing) -> dict[str, Any]:
    """A run, scheduled (`at` is the occurrence's time) or by hand (`at`: when it ran)."""
    from tether.feedback.scheduler import SCHEDULED
    from tether.feedback.schedules import iso

    return {"how": how, "at": iso(run.occurrence),
            "occurrence": iso(run.occurrence) if how == SCHEDULED else None,
            "worker": run.worker, "claimed_at": iso(run.claimed_at), "result": run.result}


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
