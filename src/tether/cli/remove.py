"""`tether remove EXP... | --failed | --older-than AGE [--dry]`: delete experiment refs."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from tether.cli.skipped import warn_skipped
from tether.errors import UsageError
from tether.experiments.manage import remove_experiments, select_for_removal
from tether.gitstore.git import Git, find_root
from tether.record.validate import Skipped
from tether.spec.values import parse_duration


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "remove",
        help="delete recorded experiments",
        description="Delete the refs of the named experiments, or of those under HEAD (every "
        "baseline with -A) that did not succeed (--failed) and/or were created more than AGE "
        "ago (--older-than 30d); both filters together select experiments matching both. "
        "All refs go in one transaction. --dry only prints what would be removed.",
    )
    parser.add_argument("exps", nargs="*", metavar="EXP", help="experiments to remove")
    parser.add_argument("--failed", action="store_true", help="experiments that did not succeed")
    parser.add_argument("--older-than", metavar="AGE", help="experiments older than AGE (30d, 12h)")
    parser.add_argument("-A", "--all-baselines", action="store_true",
                        help="with --failed/--older-than: look under every baseline")
    parser.add_argument("--dry", action="store_true", help="print what would be removed, only")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.exps and (args.failed or args.older_than):
        raise UsageError("name experiments or use --failed / --older-than, not both")
    older_than = None
    if args.older_than is not None:
        try:
            older_than = parse_duration(args.older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than {args.older_than!r}: {exc}") from None
    git = Git(find_root(args.cwd))
    skipped: list[Skipped] = []
    chosen = select_for_removal(git, args.exps, failed=args.failed, older_than=older_than,
                                all_baselines=args.all_baselines, skipped=skipped)
    warn_skipped(skipped)
    if not chosen:
        print("nothing to remove")
        return 0
    if not args.dry:
        remove_experiments(git, chosen)
    verb = "would remove" if args.dry else "removed"
    for exp in chosen:
        created = datetime.fromtimestamp(exp.created_at).strftime("%Y-%m-%d %H:%M")
        print(f"{verb} {exp.ref.name}  ({exp.status}, {created}, {exp.ref.ref})")
    return 0
