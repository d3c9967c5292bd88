"""`tether gc`: remove cached outputs that nothing kept refers to."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.cli.skipped import warn_skipped
from tether.errors import UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "gc", help="remove cache objects nothing kept refers to (locally or on a remote)",
        description="Kept: experiments newer than --older-than (all without it), "
        "experiments turned into branches, the tether.lock of every branch and tag, of "
        "HEAD and of the work tree. Everything else in the cache (or, with --remote, on "
        "that artifact remote) is removed; --dry only lists it. Each object is listed "
        "with the paths and experiments that used it (`model.bin of old-run`), or as "
        "`unreferenced` when no experiment known here did.",
    )
    parser.add_argument("--older-than", metavar="AGE",
                        help="forget experiments older than AGE (e.g. 14d, 12h)")
    parser.add_argument("--remote", metavar="NAME", help="collect on this artifact remote")
    parser.add_argument("--dry", action="store_true", help="list what would go; remove nothing")
    parser.add_argument("--remote-branches", nargs="?", const="", default=None,
                        metavar="GIT_REMOTE",
                        help="instead: delete the exp/ branches `tether run --push` made on "
                        "this git remote (default: the upstream remote) whose result is "
                        "recorded there, older than --older-than; never a branch someone "
                        "committed on")
    parser.set_defaults(handler=handle)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _used_by(uses: list[str] | None) -> str:
    """What used an object: "model.bin of old-run, ..." (3 at most), or "unreferenced"."""
    if not uses:
        return "unreferenced"
    more = len(uses) - 3
    return ", ".join(uses[:3]) + (f" and {more} more" if more > 0 else "")


def handle(args: argparse.Namespace) -> int:
    from tether.experiments.gc import gc
    from tether.gitstore.git import find_root
    from tether.spec.values import parse_duration

    older_than = None
    if args.older_than is not None:
        try:
            older_than = parse_duration(args.older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than {args.older_than!r}: {exc}") from None
    if args.remote_branches is not None:
        return _remote_branches(args, older_than)
    result = gc(find_root(args.cwd), older_than, args.remote, args.dry)
    warn_skipped(result.skipped)
    verb = "would remove" if result.dry else "removed"
    for key, size in result.removed:
        print(f"{verb}  {key}  {_size(size)}  {_used_by(result.used_by.get(key))}")
    for fingerprint in result.runs_removed:
        print(f"{verb}  run-cache {fingerprint}")
    for path in result.tmp_removed:
        print(f"{verb}  unfinished upload {path}")
    files, size = result.columns_removed
    if files:
        print(f"{verb}  {files} viewer step-column file(s) of experiments no longer kept, "
              f"{_size(size)} (.tether/view/steps/)")
    print(f"tether: gc {result.where}: {verb} {len(result.removed)} object(s), "
          f"{_size(result.bytes_freed)} freed; kept {result.kept} object(s) of "
          f"{result.kept_experiments} experiment(s) and the lock files", file=sys.stderr)
    return 0


def _remote_branches(args: argparse.Namespace, older_than: float | None) -> int:
    from tether.feedback.follow import collect_push_branches
    from tether.gitstore.git import find_root

    found = collect_push_branches(find_root(args.cwd), args.remote_branches or None,
                                  older_than=older_than or 0.0, dry=args.dry)
    for item in found:
        verb = "would delete" if args.dry else "deleted" if item.deleted else "kept (moved)"
        print(f"{verb}  {item.branch}  {item.commit[:10]}")
    deleted = sum(item.deleted for item in found)
    print(f"tether: gc: {'would delete' if args.dry else 'deleted'} "
          f"{len(found) if args.dry else deleted} pushed branch(es) whose result is recorded",
          file=sys.stderr)
    return 0
