"""Who hears of what: the `notify:` and `events:` settings, and the messages sent.

Configuration (URLs in apprise's syntax: `mailto://`, `slack://`, `discord://`,
`ntfy://`, `tgram://`, `json://` webhooks...)::

    # .tether/config.yaml (committed: no credentials here)
    notify:
      urls: [json://ci.example.org/hooks/tether]
      on: [failed, stalled, reminder]       # default: the events that need a person
    events:
      sinks: [https://events.example.org/tether]   # CloudEvents webhooks
      local: true                                  # .tether/events.jsonl

`.tether/config.local.yaml` (0600, never committed) adds URLs holding credentials;
`TETHER_NOTIFY` and `TETHER_EVENTS` (whitespace-separated URLs) add more, for CI
and workers. Reading the settings costs nothing when none of this is there: the
config files are searched for the words before YAML is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether.layout import LOCAL_CONFIG, PROJECT_CONFIG, state_dir
from tether.structs import field, struct

NOTIFY_ENV = "TETHER_NOTIFY"
EVENTS_ENV = "TETHER_EVENTS"

# Events a notification can be sent for.
FAILED, STALLED, TIMEOUT, INTERRUPTED = "failed", "stalled", "timeout", "interrupted"
REGRESSED, REMINDER, LOST, NOT_REPRODUCED = "regressed", "reminder", "lost", "not-reproduced"
FINISHED, SUCCEEDED = "finished", "succeeded"
NEEDS_A_PERSON = frozenset({FAILED, STALLED, TIMEOUT, INTERRUPTED, REGRESSED, REMINDER, LOST,
                            NOT_REPRODUCED})
EVENTS = NEEDS_A_PERSON | {FINISHED, SUCCEEDED}
# Schemes whose host part is a host name (shown in status output); for the others
# (slack://TOKEN/..., tgram://BOTTOKEN/...) everything after the scheme may be a secret.
_HOST_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "http", "https",
                           "mailto", "mailtos", "ntfy", "ntfys", "gotify", "gotifys"})
# apprise's notify types, by event.
SEVERITY = {FAILED: "failure", STALLED: "failure", TIMEOUT: "failure", LOST: "failure",
            REGRESSED: "failure", NOT_REPRODUCED: "failure", INTERRUPTED: "warning",
            REMINDER: "warning", SUCCEEDED: "success", FINISHED: "info"}
LOG_TAIL_LINES = 20


@struct(frozen=True)
class FeedbackSettings:
    """Where notifications and lifecycle events go."""

    urls: list[str] = field(default_factory=list)
    on: frozenset[str] = NEEDS_A_PERSON
    sinks: list[str] = field(default_factory=list)
    events_file: bool = False
    problems: list[str] = field(default_factory=list)  # config mistakes, shown as warnings

    @property
    def active(self) -> bool:
        return bool(self.urls or self.sinks or self.events_file)

    def wants(self, event: str) -> bool:
        return bool(self.urls) and event in self.on


def _split(value: str | None) -> list[str]:
    return value.split() if value else []


def load_settings(root: Path, env: Mapping[str, str] | None = None) -> FeedbackSettings:
    """The notify and events settings of the project at `root` and the environment."""
    env = os.environ if env is None else env
    texts: dict[str, bytes] = {}
    for filename in (PROJECT_CONFIG, LOCAL_CONFIG):
        try:
            texts[filename] = (state_dir(root) / filename).read_bytes()
        except OSError:
            continue
    urls, sinks = _split(env.get(NOTIFY_ENV)), _split(env.get(EVENTS_ENV))
    if not any(b"notify" in t or b"events" in t for t in texts.values()):
        return FeedbackSettings(urls=urls, sinks=sinks, events_file=bool(sinks))
    from tether.config import read_config_file

    problems: list[str] = []
    on: frozenset[str] = NEEDS_A_PERSON
    events_file: bool | None = None
    for filename in texts:
        local = filename == LOCAL_CONFIG
        data = read_config_file(root, local=local)
        notify = data.get("notify") or {}
        events = data.get("events") or {}
        where = f".tether/{filename}"
        if not isinstance(notify, dict) or not isinstance(events, dict):
            problems.append(f"{where}: `notify` and `events` must be mappings")
            continue
        _unknown_keys(notify, "notify", ("urls", "on"), where, problems)
        _unknown_keys(events, "events", ("sinks", "local"), where, problems)
        for key, value in (("notify.urls", notify.get("urls")),
                           ("events.sinks", events.get("sinks"))):
            found = _url_list(value, f"{where}: {key}", problems)
            if not local:
                found = _no_credentials(found, f"{where}: {key}", problems)
            (urls if key == "notify.urls" else sinks).extend(found)
        if "on" in notify:
            on = _events(notify["on"], f"{where}: notify.on", problems, on)
        if "local" in events:
            events_file = bool(events["local"])
    if events_file is None:
        events_file = bool(sinks)
    return FeedbackSettings(urls=_unique(urls), on=on, sinks=_unique(sinks),
                            events_file=events_file, problems=problems)


def _unknown_keys(section: dict[Any, Any], name: str, known: tuple[str, ...], where: str,
                  problems: list[str]) -> None:
    """A key tether does not read (a typo would silently turn notifications off)."""
    import difflib

    for key in section:
        if str(key) not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            problems.append(f"{where}: {name}.{key}: unknown key, ignored ("
                            + (f"did you mean {close[0]}?" if close else
                               f"known: {', '.join(known)}") + ")")


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _url_list(value: Any, where: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and "://" in v for v in value):
        problems.append(f"{where}: expected a list of URLs like json://host/path")
        return []
    return list(value)


def _no_credentials(urls: list[str], where: str, problems: list[str]) -> list[str]:
    from tether.urls import url_secrets

    kept = []
    for url in urls:
        if url_secrets(url):
            problems.append(f"{where}: {display_url(url)} holds credentials; ignored here. "
                            f"Put it in .tether/{LOCAL_CONFIG} (never committed) or "
                            f"{NOTIFY_ENV}")
        else:
            kept.append(url)
    return kept


def _events(value: Any, where: str, problems: list[str], default: frozenset[str]) -> frozenset[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append(f"{where}: expected a list of events")
        return default
    unknown = sorted(set(names) - EVENTS)
    if unknown:
        problems.append(f"{where}: unknown event(s) {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(EVENTS))})")
    return frozenset(names) & EVENTS


def url_key(url: str) -> str:
    """A short stable name for `url` that reveals nothing of it."""
    import hashlib  # not on the path of a run or enqueue that sends nothing

    return hashlib.sha256(url.encode()).hexdigest()[:10]


def display_url(url: str) -> str:
    """`url` as shown to people and written to files: no credentials, no tokens."""
    scheme = url.partition("://")[0]
    try:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host = port = ""
    if scheme.lower() in _HOST_SCHEMES and host:
        tail = "/…" if (parts.path.strip("/") or parts.query) else ""
        return f"{scheme}://{host}{port}{tail} (#{url_key(url)})"
    return f"{scheme}://*** (#{url_key(url)})"


# ------------------------------------------------------------------------ messages


@struct(frozen=True)
class RunFacts:
    """What a message or event says about a run (a summary of its record)."""

    name: str
    run_id: str = ""
    baseline: str = ""
    branch: str | None = None
    host: str = ""
    status: str = ""
    stage: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "run_id": self.run_id, "baseline": self.baseline,
                "branch": self.branch, "host": self.host, "status": self.status,
                "stage": self.stage, "exit_code": self.exit_code,
                "duration": self.duration, "ref": self.ref}


@struct(frozen=True)
class Notice:
    """One notification: `id` is its idempotency key (one message per id per URL)."""

    id: str
    event: str
    title: str
    body: str
    severity: str


_WHAT = {FAILED: "failed", STALLED: "stalled (no output)", TIMEOUT: "timed out",
         INTERRUPTED: "was interrupted", REGRESSED: "regressed against the main build",
         REMINDER: "is taking longer than expected", LOST: "was lost (its worker died)",
         NOT_REPRODUCED: "did not reproduce", SUCCEEDED: "succeeded", FINISHED: "finished"}


def compose(event: str, facts: RunFacts, *, detail: str = "", log_tail: str = "",
            notice_id: str | None = None) -> Notice:
    """The message for `event` of the run `facts` describes."""
    stage = f" (stage {facts.stage})" if facts.stage else ""
    title = f"tether: {facts.name} {_WHAT.get(event, event)}{stage}"
    lines = [f"Experiment: {facts.name}"]
    if facts.baseline:
        lines.append(f"Baseline: {facts.baseline[:12]}"
                     + (f" (branch {facts.branch})" if facts.branch else ""))
    if facts.host:
        lines.append(f"Host: {facts.host}")
    if facts.status:
        code = f", exit {facts.exit_code}" if facts.exit_code not in (None, 0) else ""
        took = f" after {facts.duration:.1f}s" if facts.duration is not None else ""
        lines.append(f"Status: {facts.status}{code}{took}")
    if detail:
        lines.append(detail)
    if log_tail.strip():
        lines += ["", "Last lines of the log:", log_tail.rstrip()]
    lines += ["", f"Look: tether logs {facts.name}"]
    key = notice_id or f"{facts.run_id or facts.name}:{event}:{facts.stage or ''}"
    return Notice(id=key, event=event, title=title, body="\n".join(lines),
                  severity=SEVERITY.get(event, "info"))


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def read_tail(path: Path, lines: int = LOG_TAIL_LINES, limit: int = 16384) -> str:
    """The last lines of the file at `path` ("" if it cannot be read)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - limit))
            return tail(file.read().decode(errors="replace"), lines)
    except OSError:
        return ""
