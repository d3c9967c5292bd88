"""tether's own log lines: one structlog configuration for every process and layer.

A leaf module (it imports nothing of tether), so the runner, the queue, share and
feedback all log through it. structlog and the stdlib's `logging` are imported on
the first line logged, never before: a `tether run` that logs nothing pays nothing.

- Format: `logfmt`, `json` or `console`, from `--log-format` (which sets
  `TETHER_LOG_FORMAT`, so child processes inherit it), else that variable, else
  `console` on a terminal and `logfmt` otherwise.
- Every line starts `ts level event`, then the context of the unit of work, bound
  with contextvars (`bind`): `run_id exp stage entry attempt worker queue host`,
  then the line's own keys. Multi-line values (tracebacks) are escaped onto the line.
- Lines of other libraries logging through the stdlib (Celery, kombu, apprise)
  are rendered the same way (structlog's `ProcessorFormatter` on the root logger).
- Lines go to the process's stderr, as before: a worker's to its terminal or
  service log, a queue attempt's child's to the attempt's `output.log`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

FORMATS = ("logfmt", "json", "console")
FORMAT_ENV = "TETHER_LOG_FORMAT"
LEADING_KEYS = ("ts", "level", "event")
CONTEXT_KEYS = ("run_id", "exp", "stage", "entry", "attempt", "worker", "queue", "host")

_lock = threading.Lock()
_configured: str | None = None
# The bound context: a stdlib ContextVar, so binding costs no import of structlog.
_context: ContextVar[dict[str, Any] | None] = ContextVar("tether_log_context", default=None)


def check_format(value: str, where: str) -> str:
    """`value` if it names a log format; a UsageError naming `where` otherwise."""
    if value not in FORMATS:
        from tether.errors import UsageError

        raise UsageError(f"{where} {value!r}: not a log format",
                         hint=f"use one of {', '.join(FORMATS)}")
    return value


def chosen_format(stream: TextIO | None = None) -> str:
    """The format this process logs in (see the module docstring). An unknown value of
    FORMAT_ENV counts as unset here: `tether` refuses it at start, and a library logging
    from a background thread must not fail on it."""
    value = os.environ.get(FORMAT_ENV, "")
    if value in FORMATS:
        return value
    target = stream or sys.stderr
    try:
        tty = target.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "console" if tty else "logfmt"


def configured() -> bool:
    """Whether this process has logged (so logging one more line costs no imports)."""
    return _configured is not None


def requested() -> bool:
    """Whether a command that logs only on request should log: this process logs
    already (a worker, a queue attempt), or a machine format was asked for
    (`--log-format logfmt|json` or FORMAT_ENV). A person at a terminal who asked
    for nothing gets no log lines beside a command's own output."""
    return _configured is not None or os.environ.get(FORMAT_ENV) in ("logfmt", "json")


def configure(log_format: str | None = None, stream: TextIO | None = None,
              level: str = "INFO", libraries: str | None = None) -> str:
    """Configure structlog, and the stdlib's root logger, for this process; the format.

    tether's lines are kept from `level` up; other libraries' (Celery, kombu, apprise)
    from `libraries` up (`tether worker --log-level`), by default from WARNING (or
    `level` when it is lower).
    """
    global _configured
    import logging

    import structlog

    chosen = log_format or chosen_format(stream)
    target = stream or sys.stderr
    renderer = _renderer(chosen)
    shared: list[Any] = [
        _merge_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    with _lock:
        structlog.configure(
            processors=[*shared, structlog.processors.format_exc_info, _ordered, renderer],
            logger_factory=structlog.WriteLoggerFactory(file=target),
            wrapper_class=structlog.make_filtering_bound_logger(_level(level)),
            cache_logger_on_first_use=False,
        )
        formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name,
                               structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, _ordered, renderer],
        )
        handler = logging.StreamHandler(target)
        handler.setFormatter(formatter)
        root = logging.getLogger()
        for old in [h for h in root.handlers if getattr(h, "_tether", False)]:
            root.removeHandler(old)
        handler._tether = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(_level(libraries) if libraries
                      else min(logging.WARNING, _level(level)))
        logging.captureWarnings(True)
        _configured = chosen
    return chosen


def _level(name: str) -> int:
    import logging

    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO


def _renderer(chosen: str) -> Any:
    import structlog

    if chosen == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    if chosen == "console":
        return structlog.dev.ConsoleRenderer(colors=False, sort_keys=False, timestamp_key="ts")
    return structlog.processors.LogfmtRenderer(
        key_order=[*LEADING_KEYS, *CONTEXT_KEYS], drop_missing=True, bool_as_flag=False)


def _merge_context(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """The bound context under the line's own keys (those win)."""
    return {**(_context.get() or {}), **event}


def _ordered(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """The leading and context keys first, in their fixed order (for every renderer);
    keys whose value is None are left out."""
    first = {key: event.pop(key) for key in (*LEADING_KEYS, *CONTEXT_KEYS) if key in event}
    first.update(event)
    return {key: value for key, value in first.items() if value is not None}


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; the first one configures logging for the process."""
    if _configured is None:
        configure()
    import structlog

    logger = structlog.get_logger()
    return logger if name is None else logger.bind(logger=name)


@contextmanager
def bind(**context: Any) -> Iterator[None]:
    """Attach `context` (see CONTEXT_KEYS) to every line logged inside the block, in this
    thread or task; None values are left out. Costs no import: cheap on every path."""
    token = _context.set({**(_context.get() or {}),
                          **{key: value for key, value in context.items() if value is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """What `bind` attached here (to carry it into another thread: `bind(**it)` there)."""
    return dict(_context.get() or {})
