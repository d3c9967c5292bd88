"""Delivery of notifications and events: in the background, retried, once per id.

Each destination URL has its own lane (a daemon thread and a queue), so a slow or
dead receiver delays only itself, and what one URL receives keeps its order. A
send has a short timeout; a failure is retried with exponential backoff, and an
HTTP 429 or 503 waits as long as its `Retry-After` says (capped). Nothing here
raises into a run: every outcome is appended to `.tether/notify/deliveries.jsonl`
(URLs masked, errors scrubbed), which `tether notify status` reads.

At most once per event per URL:
- the same notice id is never sent twice to a URL by one process, nor again once
  the journal says it arrived;
- `json://` and CloudEvents webhooks are posted by tether itself (so it can read
  `Retry-After`) with the id in an `Idempotency-Key` header (and, for CloudEvents,
  the event's `id`, which receivers may dedupe on by the spec). A CloudEvents sink
  is idempotent by definition, so a request that timed out after its body was sent
  is retried; a `json://` receiver is not assumed to dedupe, so such a request is
  not retried (it is journaled as "unknown");
- other apprise URLs go through `apprise.notify()`, which returns False instead of
  raising: its log is captured to tell a timeout after sending (not retried) from a
  failure to connect or a refusal (retried).

A short-lived `tether run` joins the lanes for a few seconds at exit
(`close(wait)`); what is still undelivered then is journaled as abandoned.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tether.feedback.notify import Notice, display_url, url_key
from tether.layout import state_dir
from tether.logs import configured, current_context, get_logger
from tether.structs import field, struct

ATTEMPTS = 4
TIMEOUT = 3.0  # seconds per send
BACKOFF = 0.5  # first retry delay; doubles
MAX_RETRY_AFTER = 30.0
JOURNAL_TAIL = 1 << 20  # the journal's last MiB is read for ids already delivered
_apprise_lock = threading.Lock()  # apprise's log capture is process-wide


def journal_path(root: Path) -> Path:
    return state_dir(root) / "notify" / "deliveries.jsonl"


@struct(frozen=True)
class SendResult:
    ok: bool
    retry: bool = False
    retry_after: float | None = None
    error: str = ""
    unknown: bool = False  # the request may have arrived


@struct(frozen=True)
class Job:
    kind: str  # notice | event
    url: str
    id: str
    event: str
    payload: Any  # Notice or a structured CloudEvent dict
    context: dict[str, Any] = field(default_factory=dict)  # the sender's log context


def scrub_error(text: str, url: str) -> str:
    """`text` without `url` or any part of it that may be a credential."""
    from tether.urls import mask_urls

    text = text.replace(url, display_url(url))
    parts = urlsplit(url)
    pieces = [p for p in (parts.password, parts.username, parts.netloc, parts.query,
                          *parts.path.split("/"), *(v for _, v in parse_qsl(parts.query)))
              if p and len(p) >= 6]
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***").replace(unquote(piece), "***")
    return mask_urls(text)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         idempotent: bool) -> SendResult:
    """POST `body` to `url` once; a result saying whether and when to try again."""
    import http.client
    import urllib.error
    import urllib.request

    url, auth = _basic_auth(url)
    request = urllib.request.Request(url, data=body, headers={**auth, **headers},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return SendResult(ok=True)
    except urllib.error.HTTPError as exc:
        wait = _retry_after(exc.headers.get("Retry-After")) if exc.headers else None
        transient = exc.code in (408, 425, 429) or exc.code >= 500
        return SendResult(ok=False, retry=transient, retry_after=wait,
                          error=f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:  # before the body went out: safe to send again
        return SendResult(ok=False, retry=True, error=f"cannot connect: {exc.reason}")
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        # The body may have arrived: only an idempotent receiver gets it again.
        what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return SendResult(ok=False, retry=idempotent, unknown=not idempotent,
                          error=f"no answer ({what}) after sending")
    except OSError as exc:
        return SendResult(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")


def _basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its `user:password@` part, and that part as a Basic header.

    urllib takes the user information for part of the host name, so a sink such as
    `https://user:token@events.example.org/tether` would never be reached.
    """
    import base64

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    user = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    bare = parts._replace(netloc=host).geturl()
    return bare, {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()}


def _json_target(url: str) -> tuple[str, dict[str, str]]:
    """apprise's `json://` / `jsons://` URL as an HTTP URL and extra headers."""
    import base64

    parts = urlsplit(url)
    scheme = "https" if parts.scheme.lower() == "jsons" else "http"
    headers: dict[str, str] = {}
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.startswith("+"):
            headers[key[1:]] = value
        elif not key.startswith(("-", ":")) and key not in ("method", "cto", "rto", "verify"):
            query.append(f"{key}={value}")
    if parts.username:
        auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(auth).decode()
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    target = f"{scheme}://{host}{port}{parts.path or '/'}" + (f"?{'&'.join(query)}"
                                                              if query else "")
    return target, headers


def send_notice(url: str, notice: Notice, *, timeout: float = TIMEOUT) -> SendResult:
    """Send `notice` to one apprise URL, once."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("json", "jsons"):
        target, headers = _json_target(url)
        body = json.dumps({"version": "1.0", "title": notice.title, "message": notice.body,
                           "attachments": [], "type": notice.severity,
                           "id": notice.id, "event": notice.event}).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "tether",
                   "Idempotency-Key": notice.id, "X-Tether-Event-Id": notice.id, **headers}
        return post(target, body, headers, timeout=timeout, idempotent=False)
    return _send_apprise(url, notice, timeout)


def _send_apprise(url: str, notice: Notice, timeout: float) -> SendResult:
    import logging

    try:
        import apprise
    except ImportError:
        return SendResult(ok=False, error="apprise is not installed: pip install tether[notify]")
    sep = "&" if "?" in url else "?"
    timed = url if "cto=" in url else f"{url}{sep}cto={timeout:g}&rto={timeout:g}"
    with _apprise_lock:
        sender = apprise.Apprise()
        if not sender.add(timed):
            return SendResult(ok=False, error="apprise does not understand this URL")
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = sender.notify(body=notice.body, title=notice.title,
                               notify_type=apprise.NotifyType(notice.severity))
        text = captured.getvalue()
    if ok:
        return SendResult(ok=True)
    lines = [line.split(" - ", 2)[-1] for line in text.splitlines() if line.strip()]
    error = "; ".join(lines[-2:]) or "apprise reported a failure"
    after_send = "read timed out" in text.lower() or "readtimeout" in text.lower()
    return SendResult(ok=False, retry=not after_send, unknown=after_send, error=error)


def send_event(url: str, event: dict[str, Any], *, timeout: float = TIMEOUT) -> SendResult:
    """POST one CloudEvent, structured JSON, to a webhook sink, once."""
    from tether.feedback.events import to_http

    try:
        headers, body = to_http(event)
    except ImportError:
        return SendResult(ok=False, error="cloudevents is not installed: "
                          "pip install tether[notify]")
    headers = {**headers, "Idempotency-Key": str(event["id"]), "User-Agent": "tether"}
    return post(url, body, headers, timeout=timeout, idempotent=True)


class Outbox:
    """Sends jobs in the background, one lane per URL; see the module's docstring."""

    def __init__(
        self, root: Path, *, attempts: int = ATTEMPTS, timeout: float = TIMEOUT,
        backoff: float = BACKOFF, max_retry_after: float = MAX_RETRY_AFTER,
        sender: Callable[[Job, float], SendResult] | None = None,
    ) -> None:
        self.root = root
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.sender = sender or _send
        self._lanes: dict[str, tuple[queue.Queue[Job | None], threading.Thread]] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Job] = {}
        self._tried: dict[tuple[str, str], tuple[int, str]] = {}  # attempts, last error
        self._seen: set[tuple[str, str]] | None = None
        self._closing = threading.Event()

    # -- the caller's side ------------------------------------------------

    def notify(self, notice: Notice, urls: list[str]) -> None:
        for url in urls:
            self._submit(Job("notice", url, notice.id, notice.event, notice,
                             current_context()))

    def publish(self, event: dict[str, Any], sinks: list[str]) -> None:
        for url in sinks:
            self._submit(Job("event", url, str(event["id"]), str(event["type"]), event,
                             current_context()))

    def close(self, wait: float) -> None:
        """Let the lanes finish for at most `wait` seconds; journal what is left."""
        deadline = time.monotonic() + wait
        with self._lock:
            lanes = list(self._lanes.values())
        for jobs, _ in lanes:
            jobs.put(None)
        for _, thread in lanes:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._closing.set()
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        for job in left:
            attempts, last = self._tried.get((job.id, url_key(job.url)), (0, ""))
            error = f"abandoned: the process ended (waited {wait:g}s)"
            self._journal(job, ok=False, attempts=attempts,
                          error=f"{error}; last try: {last}" if last else error)

    # -- lanes ------------------------------------------------------------

    def _submit(self, job: Job) -> None:
        key = (job.id, url_key(job.url))
        with self._lock:
            if self._seen is None:
                self._seen = _delivered(self.root)
            if key in self._seen or key in self._pending:
                return
            self._seen.add(key)
            self._pending[key] = job
            lane = self._lanes.get(job.url)
            if lane is None:
                jobs: queue.Queue[Job | None] = queue.Queue()
                thread = threading.Thread(target=self._run_lane, args=(jobs,),
                                          name="tether-notify", daemon=True)
                self._lanes[job.url] = lane = (jobs, thread)
                thread.start()
        lane[0].put(job)

    def _run_lane(self, jobs: queue.Queue[Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            self._deliver(job)

    def _deliver(self, job: Job) -> None:
        result = SendResult(ok=False, error="not sent")
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            try:
                result = self.sender(job, self.timeout)
            except Exception as exc:  # a sender bug must not reach the run
                result = SendResult(ok=False, retry=False, error=f"{type(exc).__name__}: {exc}")
            if result.ok or not result.retry or attempt == self.attempts:
                break
            with self._lock:  # what close() says if the process ends before the next try
                self._tried[(job.id, url_key(job.url))] = (
                    attempt, scrub_error(result.error, job.url))
            delay = self.backoff * 2 ** (attempt - 1)
            if result.retry_after is not None:
                delay = min(max(delay, result.retry_after), self.max_retry_after)
            if self._closing.wait(delay):
                break
        with self._lock:
            self._tried.pop((job.id, url_key(job.url)), None)
            if self._pending.pop((job.id, url_key(job.url)), None) is None:
                return  # journaled as abandoned by close()
        error = "" if result.ok else scrub_error(result.error, job.url)
        if result.unknown:
            error = f"unknown whether it arrived: {error}"
        self._journal(job, ok=result.ok, attempts=attempt, error=error)

    def _journal(self, job: Job, *, ok: bool, attempts: int, error: str) -> None:
        entry = {"at": time.time(), "id": job.id, "kind": job.kind, "event": job.event,
                 "url": display_url(job.url), "key": url_key(job.url), "ok": ok,
                 "attempts": attempts, "error": error}
        if not ok or configured():  # a run that logs nothing imports no logging for this
            log = get_logger("tether.notify")
            getattr(log, "info" if ok else "warning")(
                f"notification_{outcome_of(entry)}", **job.context, kind=job.kind,
                notice=job.event, url=entry["url"], attempts=attempts, error=error or None)
        line = json.dumps(entry) + "\n"
        path = journal_path(self.root)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # a read-only state dir must not fail the run


def _send(job: Job, timeout: float) -> SendResult:
    if job.kind == "event":
        return send_event(job.url, job.payload, timeout=timeout)
    return send_notice(job.url, job.payload, timeout=timeout)


def read_journal(root: Path, limit: int = JOURNAL_TAIL) -> list[dict[str, Any]]:
    """The journal's entries (its last `limit` bytes), oldest first."""
    path = journal_path(root)
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - limit))
            data = file.read()
    except OSError:
        return []
    entries = []
    lines = data.splitlines()
    if size > limit:
        lines = lines[1:]  # cut mid-line
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


# How a journaled delivery ended, as `tether metrics` counts them.
OUTCOMES = ("delivered", "failed", "unknown", "abandoned")


def outcome_of(entry: dict[str, Any]) -> str:
    """One of `OUTCOMES` for a journal entry (written by `Outbox._journal`)."""
    if entry.get("ok"):
        return "delivered"
    error = str(entry.get("error", ""))
    if error.startswith("unknown whether"):
        return "unknown"
    return "abandoned" if error.startswith("abandoned") else "failed"


def _delivered(root: Path) -> set[tuple[str, str]]:
    return {(str(e.get("id")), str(e.get("key"))) for e in read_journal(root) if e.get("ok")}
