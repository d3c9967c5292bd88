"""`tether push`: experiment refs to a git remote, their artifacts to the artifact remote."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.errors import DivergedError, TransferRejected


def add_selection(parser: argparse.ArgumentParser, verb: str) -> None:
    """Arguments shared by push and pull."""
    parser.add_argument("git_remote", nargs="?", default="origin", metavar="GIT_REMOTE",
                        help="the git remote (default: origin); a first word that is no "
                        "remote, URL or path is taken as an experiment")
    parser.add_argument("experiments", nargs="*", metavar="EXP",
                        help=f"experiments to {verb} (default: those of HEAD's commit)")
    parser.add_argument("-A", "--all", dest="every", action="store_true",
                        help=f"{verb} every experiment")
    parser.add_argument("--baseline", metavar="REV",
                        help=f"{verb} the experiments recorded against REV")
    parser.add_argument("--no-artifacts", dest="artifacts", action="store_false",
                        help="move refs only, not outputs or run-cache entries")
    parser.add_argument("--force", action="store_true",
                        help="overwrite diverged refs (same name, different commit)")
    parser.add_argument("-r", "--remote", help="artifact remote (default: the default one)")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "push", help="push experiments (refs, outputs, run-cache entries)",
        description="Push experiment refs under refs/tether/exps/ in one git push, then the "
        "outputs their records reference and their run-cache entries to the default "
        "artifact remote, sending only what is missing. A diverged ref is reported and "
        "left alone unless --force (exit 9); a ref the git remote refuses (a hook, "
        "permissions) is reported with the remote's own words (exit 12).",
    )
    add_selection(parser, "push")
    parser.set_defaults(handler=handle)


def render(report: Any, verb: str) -> int:
    """Print a push/pull report; raise DivergedError when refs were left alone."""
    counts: dict[str, int] = {}
    for ref in report.refs:
        counts[ref.status] = counts.get(ref.status, 0) + 1
        if ref.status not in ("up-to-date",):
            print(f"{ref.status:<10} {ref.ref}" + (f"  {ref.detail}" if ref.detail else ""))
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    print(f"tether: {verb} refs: {summary}", file=sys.stderr)
    art = report.artifacts
    if art is not None:
        moved = "sent" if verb == "push" else "received"
        print(f"tether: {verb} artifacts ({report.remote}): {len(art.sent)} object(s) "
              f"{moved}, {art.bytes} bytes, {art.present} already there, {art.runs} run-cache "
              "entr(y/ies)", file=sys.stderr)
        for key in art.missing:
            print(f"tether: warning: object {report.describe(key)} is on neither side "
                  "(not in the local cache, not on the artifact remote)", file=sys.stderr)
        if art.failed:
            from tether.errors import RemoteError

            key, error = art.failed[0]
            raise RemoteError(f"{len(art.failed)} object(s) failed to transfer; first: {key}: "
                              f"{error}", hint="run the command again: it resumes")
    if report.rejected:
        said = "\n".join(f"  {line}" for line in report.git_message.splitlines())
        also = (f"; {len(report.diverged)} more diverged (same name, another commit)"
                if report.diverged else "")
        raise TransferRejected(
            f"the git remote refused {len(report.rejected)} experiment ref(s){also}"
            + (f"; it said:\n{said}" if said else ""),
            hint="a hook or a permission on the remote refused them, and --force does not "
            "change that: ask who runs the remote, or push to another one",
        )
    if report.diverged:
        raise DivergedError(
            f"{len(report.diverged)} experiment ref(s) diverged and were left alone",
            hint=f"both sides recorded a different run under the same name; rename one, or "
            f"{verb} --force to overwrite",
        )
    return 0


def handle(args: argparse.Namespace) -> int:
    from tether.cli.progress import ProgressBar
    from tether.gitstore.git import find_root
    from tether.share.transfer import push

    with ProgressBar("push", unit="bytes") as bar:
        report = push(find_root(args.cwd), args.git_remote, args.experiments,
                      every=args.every, baseline=args.baseline, artifacts=args.artifacts,
                      force=args.force, remote=args.remote, progress=bar)
    return render(report, "push")
