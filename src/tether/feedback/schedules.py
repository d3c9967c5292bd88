"""Schedules kept in git: the `schedules:` section of `.tether/config.yaml`, and when
each one is due.

Shape (the committed config only: a schedule is reviewed and merged like code)::

    schedules:
      nightly-repro: {cron: "0 3 * * *", repro: last-main-build}
      nightly-full:
        cron: "30 2 * * 1-5"            # cron, parsed by cronsim (5 fields)
        timezone: Europe/Berlin         # default UTC
        run: {args: ["-S", "data.subset=full"]}   # `tether run --queue` arguments
        queue: gpu                      # default: default (run: and repro: alike)
        catchup: once                   # once (default) | skip
      smoke: {every: 10m, run: {args: [train]}}   # or a fixed interval: 30s, 10m, 2h, 1d

An occurrence is due once its time has come and it is newer than the schedule's last
claimed one (`QueueBackend.fired`). Occurrences missed while no worker ran (seen more
than `on_time` late) are fired once, the newest of them, at the next start
(`catchup: once`), or not at all (`catchup: skip`). A schedule that has never fired
starts with its next occurrence. Time is always a parameter: tests never sleep.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from tether.errors import UsageError, close_matches
from tether.queue.base import DEFAULT_QUEUE
from tether.spec.nodes import Node, Problems, describe
from tether.structs import struct

CATCHUP = ("once", "skip")
ACTIONS = ("run", "repro")
KEYS = ("cron", "every", "run", "repro", "catchup", "timezone", "queue")
# An occurrence first seen this many seconds late was missed (no worker ran at its time).
ON_TIME = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_EVERY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# `tether run --queue` options a `run: {args: [...]}` may hold (the rest are positional
# stage names): option -> the QueueRequest field it sets; flags take no value.
_RUN_OPTIONS = {"-S": "overrides", "--set-param": "overrides", "-m": "message",
                "--message": "message", "--priority": "priority", "--repeat": "repeat"}
_RUN_FLAGS = {"--force": "force"}


@struct(frozen=True)
class RunArgs:
    """What a `run:` occurrence queues, from its `tether run --queue` arguments."""

    targets: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    message: str = ""
    force: bool = False
    priority: int = 0
    repeat: int = 1


@struct(frozen=True)
class Schedule:
    """One entry of `schedules:`."""

    name: str
    cron: str | None = None
    every: float | None = None  # seconds
    run: RunArgs | None = None
    repro: str | None = None  # the experiment to reproduce (e.g. last-main-build)
    catchup: str = "once"
    timezone: str = "UTC"
    queue: str = DEFAULT_QUEUE
    line: int | None = None

    @property
    def action(self) -> str:
        return "repro" if self.repro is not None else "run"

    @property
    def spec(self) -> str:
        """How it is written, e.g. `cron 0 3 * * * (UTC)` or `every 10m`."""
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        return f"every {format_interval(self.every or 0)}"

    @property
    def what(self) -> str:
        """What an occurrence does, e.g. `repro last-main-build` or `run -S a=1`."""
        if self.repro is not None:
            return f"repro {self.repro}"
        run = self.run or RunArgs()
        words = [*run.targets, *(f"-S {o}" for o in run.overrides)]
        return " ".join(["run", *words])

    def _zone(self) -> tzinfo:
        if self.timezone == "UTC":
            return UTC
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def latest(self, now: float) -> float:
        """The time of its newest occurrence at or before `now`."""
        if self.every is not None:
            return math.floor(now / self.every) * self.every
        from cronsim import CronSim

        moment = datetime.fromtimestamp(now, self._zone()) + timedelta(microseconds=1)
        return next(CronSim(str(self.cron), moment, reverse=True)).timestamp()

    def next_after(self, now: float) -> float:
        """The time of its first occurrence after `now`."""
        if self.every is not None:
            return (math.floor(now / self.every) + 1) * self.every
        from cronsim import CronSim

        return next(CronSim(str(self.cron), datetime.fromtimestamp(now, self._zone()))).timestamp()

    def on_time(self) -> float:
        """How late an occurrence may be seen and still count as on time."""
        return min(ON_TIME, self.every) if self.every is not None else ON_TIME


def due(schedule: Schedule, last: float | None, now: float) -> float | None:
    """The occurrence to fire now (its time), given the last claimed one; None if none.

    A missed occurrence (seen later than `on_time`) fires only with `catchup: once`, and
    only for a schedule that fired before; several missed fire once, as the newest.
    """
    latest = schedule.latest(now)
    if last is not None and latest <= last:
        return None
    if now - latest <= schedule.on_time():
        return latest
    if schedule.catchup == "skip" or last is None:
        return None
    return latest


def format_interval(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def iso(moment: float) -> str:
    """An epoch time as RFC 3339 UTC (`2026-11-30T03:00:00Z`)."""
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


# -- reading the config --------------------------------------------------------


def load_schedules(root: Path) -> list[Schedule]:
    """The schedules of the project at `root`; a UsageError lists every problem found
    (`.tether/config.yaml:LINE: schedules.NAME.KEY: ...`)."""
    from tether.config import project_config_nodes

    label, document, problems = project_config_nodes(root)
    found = Problems(label)
    for line in problems:
        found.lines.append(line)
    entry = document.get("schedules") if document is not None and document.kind == "map" \
        else None
    schedules = parse_schedules(entry.node, found) if entry is not None else []
    if found.lines:
        count = len(found.lines)
        body = "\n".join(f"  {line}" for line in found.in_file_order() or found.lines)
        raise UsageError(f"invalid schedules ({count} problem{'s' if count != 1 else ''}):\n"
                         f"{body}", hint="see docs/schedules.md for the keys a schedule takes")
    return schedules


def parse_schedules(node: Node, problems: Problems) -> list[Schedule]:
    """Schedules from the node of the `schedules:` mapping; problems are collected."""
    if node.kind == "scalar" and node.scalar is None:
        return []
    if node.kind != "map":
        problems.add(node.line, "schedules", f"expected a mapping of schedule names, "
                     f"found {describe(node)}")
        return []
    schedules = []
    for entry in node.entries:
        where = f"schedules.{entry.key}"
        if not _NAME.match(entry.key):
            problems.add(entry.line, where, "a schedule name takes letters, digits, '.', '_' "
                         "and '-' (at most 64)")
            continue
        before = len(problems.lines)
        schedule = _schedule(entry.key, entry.node, where, problems)
        if schedule is not None and len(problems.lines) == before:
            schedules.append(schedule)
    return schedules


def _schedule(name: str, node: Node, where: str, problems: Problems) -> Schedule | None:
    if node.kind != "map":
        problems.add(node.line, where, f"expected a mapping such as {{cron: \"0 3 * * *\", "
                     f"run: {{args: []}}}}, found {describe(node)}")
        return None
    values: dict[str, Any] = {"name": name, "line": node.line}
    for entry in node.entries:
        if entry.key not in KEYS:
            near = close_matches(entry.key, list(KEYS))
            hint = f" (did you mean {near[0]!r}?)" if near else f" (keys: {', '.join(KEYS)})"
            problems.add(entry.line, where, f"unknown key {entry.key!r}{hint}")
    timing = [key for key in ("cron", "every") if node.get(key) is not None]
    actions = [key for key in ACTIONS if node.get(key) is not None]
    if len(timing) != 1:
        problems.add(node.line, where, "give exactly one of cron: or every:"
                     + (f" (found {' and '.join(timing)})" if timing else ""))
    if len(actions) != 1:
        problems.add(node.line, where, "give exactly one action, run: or repro:"
                     + (f" (found {' and '.join(actions)})" if actions else ""))
    _timing(node, where, problems, values)
    _actions(node, where, problems, values)
    _options(node, where, problems, values)
    return Schedule(**values)


def _scalar(node: Node, where: str, problems: Problems, kinds: tuple[type, ...],
            expected: str) -> Any:
    if node.kind != "scalar" or isinstance(node.scalar, bool) or not isinstance(node.scalar,
                                                                              kinds):
        problems.add(node.line, where, f"expected {expected}, found {describe(node)}")
        return None
    return node.scalar


def _timing(node: Node, where: str, problems: Problems, values: dict[str, Any]) -> None:
    cron, every = node.get("cron"), node.get("every")
    if cron is not None:
        text = _scalar(cron.node, f"{where}.cron", problems, (str,), 'a cron expression')
        if text is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
            except (CronSimError, ValueError) as exc:
                problems.add(cron.line, f"{where}.cron", f"{text!r} is not a valid cron "
                             f"expression ({exc}); e.g. \"0 3 * * *\" (03:00 every day)")
            else:
                values["cron"] = text
    if every is not None:
        raw = _scalar(every.node, f"{where}.every", problems, (str, int, float),
                      "an interval such as 30s, 10m, 2h or 1d")
        match = _EVERY.match(str(raw)) if raw is not None else None
        seconds = float(match[1]) * _UNITS[match[2]] if match else 0.0
        if raw is not None and seconds < 1:
            problems.add(every.line, f"{where}.every", f"{raw!r} is not an interval of a "
                         "second or more; write 30s, 10m, 2h or 1d")
        elif raw is not None:
            values["every"] = seconds


def _actions(node: Node, where: str, problems: Problems, values: dict[str, Any]) -> None:
    repro, run = node.get("repro"), node.get("run")
    if repro is not None:
        target = _scalar(repro.node, f"{where}.repro", problems, (str,),
                         "the experiment to reproduce (a name, or last-main-build)")
        if target is not None:
            values["repro"] = target
    if run is not None:
        values["run"] = _run_args(run.node, f"{where}.run", problems)


def _run_args(node: Node, where: str, problems: Problems) -> RunArgs:
    if node.kind == "scalar" and node.scalar is None:
        return RunArgs()
    args = node.get("args") if node.kind == "map" else None
    extra = [e.key for e in node.entries if e.key != "args"] if node.kind == "map" else []
    if node.kind != "map" or extra:
        problems.add(node.line, where, "expected {args: [...]}, the arguments of "
                     "`tether run --queue`, e.g. {args: [\"-S\", \"data.subset=full\"]}")
        return RunArgs()
    if args is None:
        return RunArgs()
    words = args.node.to_python()
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        problems.add(args.line, f"{where}.args", f"expected a list of strings, found "
                     f"{describe(args.node)}")
        return RunArgs()
    return _parse_run_words(words, f"{where}.args", args.line, problems)


def _parse_run_words(words: list[str], where: str, line: int | None,
                     problems: Problems) -> RunArgs:
    fields: dict[str, Any] = {"targets": [], "overrides": []}
    rest = iter(words)
    for word in rest:
        option, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if option in _RUN_FLAGS and not eq:
            fields[_RUN_FLAGS[option]] = True
        elif option in _RUN_OPTIONS:
            value = inline if eq else next(rest, None)
            if value is None:
                problems.add(line, where, f"{option} needs a value")
                continue
            _set_run_field(fields, _RUN_OPTIONS[option], option, value, where, line, problems)
        elif word.startswith("-"):
            known = sorted({*_RUN_OPTIONS, *_RUN_FLAGS})
            problems.add(line, where, f"{word!r} is not an option a schedule's run takes "
                         f"({', '.join(known)} and stage names)")
        else:
            fields["targets"].append(word)
    fields["targets"] = tuple(fields["targets"])
    fields["overrides"] = tuple(fields["overrides"])
    return RunArgs(**fields)


def _set_run_field(fields: dict[str, Any], name: str, option: str, value: str, where: str,
                   line: int | None, problems: Problems) -> None:
    if name == "overrides":
        fields["overrides"].append(value)
    elif name == "message":
        fields["message"] = value
    elif value.lstrip("-").isdigit() and (name == "priority" or int(value) >= 1):
        fields[name] = int(value)
    else:
        problems.add(line, where, f"{option} {value!r}: expected "
                     + ("an integer" if name == "priority" else "a count of 1 or more"))


def _options(node: Node, where: str, problems: Problems, values: dict[str, Any]) -> None:
    catchup, zone, queue = node.get("catchup"), node.get("timezone"), node.get("queue")
    if catchup is not None:
        text = _scalar(catchup.node, f"{where}.catchup", problems, (str,), "once or skip")
        if text is not None and text not in CATCHUP:
            problems.add(catchup.line, f"{where}.catchup", f"{text!r}: expected once or skip")
        elif text is not None:
            values["catchup"] = text
    if zone is not None:
        text = _scalar(zone.node, f"{where}.timezone", problems, (str,), "a time zone name")
        if text is not None and _known_zone(text):
            values["timezone"] = text
        elif text is not None:
            problems.add(zone.line, f"{where}.timezone", f"{text!r} is not a known time "
                         "zone; use an IANA name such as UTC or Europe/Berlin")
        if zone.node.scalar is not None and node.get("every") is not None:
            problems.add(zone.line, f"{where}.timezone", "goes with cron:, not every:")
    if queue is not None:
        text = _scalar(queue.node, f"{where}.queue", problems, (str,), "a queue name")
        if text is not None and (not text.strip() or text != text.strip() or " " in text):
            problems.add(queue.line, f"{where}.queue", f"{text!r}: a queue name must be "
                         "non-empty, without blanks")
        elif text is not None:
            values["queue"] = text


def _known_zone(name: str) -> bool:
    if name == "UTC":
        return True
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def find_schedule(schedules: list[Schedule], name: str) -> Schedule:
    """The schedule called `name`; a UsageError naming the known ones otherwise."""
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    names = [s.name for s in schedules]
    near = close_matches(name, names)
    raise UsageError(f"no schedule named {name!r} in .tether/config.yaml",
                     hint=f"did you mean {near[0]!r}?" if near else
                     f"schedules: {', '.join(names)}" if names else
                     "add one under schedules: (see docs/schedules.md)")

