"""The `tether` command: parse arguments, dispatch to one command module, map errors."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tether import __version__
from tether.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_USAGE,
    GitError,
    LocalStateError,
    TetherError,
    UsageError,
)

# One module per command under tether.cli, each with register(sub) and handle(args).
# A command's module is its name with '-' as '_' (ls-remote -> tether.cli.ls_remote).
COMMANDS = (
    "init", "run", "status", "spec", "show",
    "diff", "plots", "logs", "apply", "branch", "rename", "remove",
    "add", "data", "checkout", "remote", "push", "pull", "ls-remote", "gc",
    "queue", "worker", "schedule", "gate", "report", "ci", "notify", "repro", "metrics",
    "view",
)

# Commands that end with nothing left to finish but flushing the terminal: the
# `tether` executable skips the interpreter's teardown after them (about 10 ms of
# a run's 100 ms budget). Long-lived commands (worker, logs -f, push...) exit normally.
FAST_EXIT = frozenset({"run", "status", "spec", "show", "diff"})


@functools.cache
def _help_width() -> int:
    """Columns for help text: $COLUMNS, else the terminal's, else 80 (less a margin)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


_Formatter = Callable[..., argparse.HelpFormatter]


def _sized(formatter: _Formatter) -> _Formatter:
    """`formatter` told its width: left alone, argparse imports shutil to measure the
    terminal for every argument added, a few ms of every command's start."""

    def make(prog: str) -> argparse.HelpFormatter:
        return formatter(prog, width=_help_width())

    return make


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = _sized(kwargs.get("formatter_class", argparse.HelpFormatter))
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"tether: error: {message}\n")


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv, so only its module needs importing."""
    skip_next = False
    for token in argv:
        if skip_next:
            skip_next = False
            continue
        if token in ("-C", "--log-format"):
            skip_next = True
            continue
        if token.startswith("-"):
            continue
        return token if token in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that command's module is imported."""
    parser = _Parser(
        prog="tether",
        description="Run research and ML experiments fast; record every run as a git ref.",
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks of unexpected errors"
    )
    parser.add_argument(
        "-C", dest="directory", type=Path, default=None, metavar="DIR",
        help="run as if tether was started in DIR",
    )
    parser.add_argument(
        "--log-format", metavar="FORMAT", default=None,
        help="how tether's own log lines look: logfmt, json or console (default: console on "
        "a terminal, logfmt otherwise; also $TETHER_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in (only,) if only else COMMANDS:
        try:
            module_name = f"tether.cli.{name.replace('-', '_')}"
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def _log_traceback(cwd: Path, exc: BaseException) -> Path | None:
    """Append the traceback to `.tether/logs/tether.log` of the enclosing repo, if any.

    Secret values and URL passwords are scrubbed from it; the folder is 0700 and
    the file 0600, as a traceback may still quote what it was given.
    """
    import traceback
    from datetime import UTC, datetime

    try:
        from tether.gitstore.git import find_root
        from tether.layout import error_log
        from tether.project import ensure_state_dir

        root = find_root(cwd)
        ensure_state_dir(root)
        path = error_log(root)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        text = (f"--- {datetime.now(UTC).isoformat()} tether {' '.join(sys.argv[1:])}\n"
                + "".join(traceback.format_exception(exc)))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            os.fchmod(fd, 0o600)
            handle.write(_scrubbed(text, root))
        return path
    except Exception:
        return None


def _scrubbed(text: str, root: Path | None = None) -> str:
    """`text` without the secret values of this environment and without URL passwords."""
    from tether.record.redact import discover
    from tether.urls import mask_urls

    try:
        secrets = discover(root=root)
    except Exception:  # e.g. an unreadable `redact:` config: the environment's still count
        secrets = discover()
    return mask_urls(secrets.scrub(text))


def _print_traceback(exc: BaseException) -> None:
    import traceback

    sys.stderr.write(_scrubbed("".join(traceback.format_exception(exc))))


_NO_SPACE = "No space left on device"
_SQLITE_LOCAL = ("database or disk is full", "unable to open database file",
                 "attempt to write a readonly database", "disk I/O error")


def _local_state_error(exc: BaseException, command: str) -> LocalStateError | None:
    """The clear error for a full disk, a missing permission or a read-only file system,
    wherever tether met it (writing state, a database, or git writing objects)."""
    import errno

    if isinstance(exc, GitError):
        if _NO_SPACE not in exc.stderr:
            return None
        target, problem, full = ".git (git objects)", _NO_SPACE, True
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES,
                                                    errno.EPERM, errno.EROFS):
        target = str(exc.filename) if exc.filename else "a file under .tether/"
        problem, full = exc.strerror or str(exc), exc.errno in (errno.ENOSPC, errno.EDQUOT)
    elif type(exc).__module__ == "sqlite3" and any(m in str(exc) for m in _SQLITE_LOCAL):
        # sqlitedb.connect names the file: "<path>: <what sqlite said>"
        target, _, problem = str(exc).rpartition(": ")
        target = target or "a tether database under .tether/"
        full = "full" in problem
    else:
        return None
    if full:
        lost = ("; this run was not recorded (outputs it already wrote stay in the work tree: "
                "run it again)" if command == "run" else "")
        hint = ("free some space and run the command again; tether replaces its files whole "
                f"or not at all, so nothing already stored was damaged{lost}")
    else:
        hint = ("give your user read and write access to it (and to .tether/), or move it "
                "away if tether may rebuild it (index.db, tmp/)")
    return LocalStateError(f"cannot write {target}: {problem}", hint=hint)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] | None = None
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, passthrough = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser(_requested_command(args_list))
    args = parser.parse_args(args_list)
    args.passthrough = passthrough
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    cwd = (args.directory or Path.cwd()).resolve()
    args.cwd = cwd
    args.argv = ["tether", *args_list, *(["--", *passthrough] if passthrough is not None else [])]
    try:
        if args.log_format is not None:  # children (workers' runs) inherit it
            from tether.logs import FORMAT_ENV, check_format

            os.environ[FORMAT_ENV] = check_format(args.log_format, "--log-format")
        elif os.environ.get("TETHER_LOG_FORMAT"):  # tether.logs.FORMAT_ENV
            from tether.logs import FORMAT_ENV, check_format

            check_format(os.environ[FORMAT_ENV], FORMAT_ENV)
        if args.directory is not None and not cwd.is_dir():
            problem = "is not a directory" if cwd.exists() else "does not exist"
            raise UsageError(f"-C {args.directory}: {cwd} {problem}",
                             hint="give the directory of your project, or leave -C out")
        code: int = args.handler(args)
        return code
    except TetherError as exc:
        exc = _local_state_error(exc, args.command) or exc
        _log_traceback(cwd, exc)
        if args.verbose:
            _print_traceback(exc)
        print(f"tether: error: {_scrubbed(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tether: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tether show --json | head`): stop quietly, as a command
        # killed by SIGPIPE does, and keep Python from failing to flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        local = _local_state_error(exc, args.command)
        if local is not None:
            _log_traceback(cwd, exc)
            if args.verbose:
                _print_traceback(exc)
            print(f"tether: error: {local}", file=sys.stderr)
            return local.exit_code
        where = _log_traceback(cwd, exc)
        if args.verbose:
            _print_traceback(exc)
        print(f"tether: internal error: {exc.__class__.__name__}: {_scrubbed(str(exc))}",
              file=sys.stderr)
        if where and not args.verbose:
            print(f"  the traceback is in {where}; please report it", file=sys.stderr)
        return EXIT_INTERNAL


def console() -> None:
    """The `tether` executable: `main()`, then exit."""
    argv = sys.argv[1:]
    code = main(argv)
    if _requested_command(argv) in FAST_EXIT and threading.active_count() == 1:
        # Every file tether wrote is closed; only the standard streams may hold output.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        else:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
