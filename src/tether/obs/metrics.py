"""Prometheus metrics of a project, computed at scrape time from what tether stores.

Nothing is counted in a process's memory: every scrape reads the queue's state
(`QueueBackend.stats`: waiting, running, live workers, retry and lost-worker
counters), the experiment index (runs by status, stage durations, timeouts) and
the notification journal. So the figures are exact however many worker processes
or machines there are, and no multiprocess files are needed (prometheus-client's
multiprocess mode cannot run a custom collector anyway).

A state store that does not answer leaves the queue's metrics out of that scrape
(they vanish: alert on `absent(tether_queue_depth)`) while the rest is served.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import UsageError
from tether.feedback.delivery import OUTCOMES, journal_path, outcome_of
from tether.queue.base import DEFAULT_QUEUE, QueueBackend, QueueStats
from tether.status import FAILED, INTERRUPTED, STALLED, SUCCESS, TIMEOUT
from tether.structs import struct

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

# Upper bounds of tether_stage_duration_seconds' buckets: a stage takes seconds to days.
DURATION_BOUNDS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                   3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
RUN_STATUSES = (SUCCESS, FAILED, TIMEOUT, STALLED, INTERRUPTED)
# tether_stage_timeouts_total{kind}: a stage's status -> its kind label.
TIMEOUT_KINDS = {TIMEOUT: "timeout", STALLED: "stall"}
# How long a scrape waits for a state store that does not answer (a worker waits a
# minute); then the queue's metrics are left out, well within a scrape timeout.
STORE_WAIT = 2.0


def prometheus_missing(exc: ImportError) -> UsageError:
    """The error for `tether metrics` without prometheus-client installed."""
    return UsageError("metrics need prometheus-client", hint=f"install tether[metrics] ({exc})")


class JournalTally:
    """Outcome counts of the notification journal; each call reads only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        with self._lock:
            try:
                size = self.path.stat().st_size
            except OSError:
                return dict(self._counts)
            if size < self._offset:  # truncated or replaced: count it again
                self._offset, self._partial = 0, b""
                self._counts = dict.fromkeys(OUTCOMES, 0)
            with open(self.path, "rb") as journal:
                journal.seek(self._offset)
                data = journal.read(size - self._offset)
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    outcome = outcome_of(entry)
                    self._counts[outcome] += 1
            return dict(self._counts)


@struct
class Figures:
    """Everything one scrape exports (queue is None when the state store did not answer)."""

    queue: QueueStats | None
    runs: dict[str, int]
    stages: list[tuple[Any, ...]]  # Index.stage_figures rows
    notifications: dict[str, int]
    now: float


class ProjectMetrics:
    """A prometheus-client collector of the project at `root` (one read per scrape)."""

    def __init__(self, root: Path, backend: QueueBackend,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.backend = backend
        self.clock = clock
        self.journal = JournalTally(journal_path(root))

    def read(self) -> Figures:
        """The figures as of now."""
        from tether.experiments.index import refresh
        from tether.gitstore.git import Git

        now = self.clock()
        try:
            stats: QueueStats | None = self.backend.stats(now)
        except Exception as exc:  # the state store is away: these gauges vanish this time
            from tether.logs import get_logger

            get_logger("tether.metrics").warning("queue_stats_failed",
                                                 error=f"{type(exc).__name__}: {exc}")
            stats = None
        index = refresh(Git(self.root))
        try:
            runs, stages = index.run_counts(), index.stage_figures(DURATION_BOUNDS)
        finally:
            index.close()
        return Figures(stats, runs, stages, self.journal.counts(), now)

    def collect(self) -> Iterator[Any]:
        yield from families(self.read())


def families(figures: Figures) -> Iterator[Any]:
    """The metric families of `figures` (names and labels as docs/operations.md lists)."""
    try:
        from prometheus_client.core import CounterMetricFamily
    except ImportError as exc:
        raise prometheus_missing(exc) from None
    if figures.queue is not None:
        yield from _queue_families(figures.queue, figures.now)
    runs = CounterMetricFamily("tether_runs", "Recorded runs (experiments), by status",
                               labels=["status"])
    for status in sorted({*RUN_STATUSES, *figures.runs}):
        runs.add_metric([status], figures.runs.get(status, 0))
    yield runs
    yield from _stage_families(figures.stages)
    notifications = CounterMetricFamily(
        "tether_notifications", "Notification and event deliveries, by outcome",
        labels=["outcome"])
    for outcome in OUTCOMES:
        notifications.add_metric([outcome], figures.notifications.get(outcome, 0))
    yield notifications


def _queue_families(stats: QueueStats, now: float) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    queues = sorted({DEFAULT_QUEUE, *stats.queues, *stats.waiting, *stats.running})
    gauges = (
        ("tether_queue_depth", "Entries waiting to run (queued or retrying)", stats.waiting),
        ("tether_queue_running", "Entries running", stats.running),
        ("tether_workers", "Workers whose heartbeats are fresh", stats.workers),
    )
    for name, text, values in gauges:
        gauge = GaugeMetricFamily(name, text, labels=["queue"])
        for queue in queues:
            gauge.add_metric([queue], values.get(queue, 0))
        yield gauge
    oldest = GaugeMetricFamily("tether_oldest_waiting_seconds",
                               "How long the longest-waiting claimable entry has waited",
                               labels=["queue"])
    for queue in queues:
        since = stats.waiting_since.get(queue)
        oldest.add_metric([queue], max(0.0, now - since) if since is not None else 0.0)
    yield oldest
    yield CounterMetricFamily("tether_retries", "Attempts that ended in a retry",
                              value=stats.retries)
    yield CounterMetricFamily("tether_lost_workers",
                              "Attempts whose worker was lost (its lease expired)",
                              value=stats.lost_workers)


def _stage_families(rows: list[tuple[Any, ...]]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    per_stage: dict[str, list[float]] = {}  # stage -> [count, sum, bucket counts...]
    kinds = dict.fromkeys(TIMEOUT_KINDS.values(), 0)
    for stage, status, count, total, *below in rows:
        figures = per_stage.setdefault(stage, [0.0] * (2 + len(DURATION_BOUNDS)))
        for position, value in enumerate((count, total, *below)):
            figures[position] += value or 0
        if status in TIMEOUT_KINDS:
            kinds[TIMEOUT_KINDS[status]] += count
    histogram = HistogramMetricFamily("tether_stage_duration_seconds",
                                      "How long stages that ran took", labels=["stage"])
    for stage in sorted(per_stage):
        count, total, *below = per_stage[stage]
        buckets = [(_bound(b), n) for b, n in zip(DURATION_BOUNDS, below, strict=True)]
        histogram.add_metric([stage], [*buckets, ("+Inf", count)], sum_value=total)
    yield histogram
    timeouts = CounterMetricFamily(
        "tether_stage_timeouts", "Stages stopped by their timeout or stall_timeout",
        labels=["kind"])
    for kind, count in kinds.items():
        timeouts.add_metric([kind], count)
    yield timeouts


def _bound(value: float) -> str:
    return repr(value) if value != int(value) else f"{value:.1f}"


def open_for_scrapes(root: Path) -> QueueBackend:
    """The project's queue backend, waiting at most STORE_WAIT for its state store."""
    from tether.queue.client import open_queue

    backend = open_queue(root)
    if hasattr(backend, "reconnect_window"):  # the Redis state store retries outages
        backend.reconnect_window = STORE_WAIT
    return backend


def registry_of(collector: ProjectMetrics) -> CollectorRegistry:
    """A registry holding only `collector` (no process or platform metrics)."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError as exc:
        raise prometheus_missing(exc) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(collector: ProjectMetrics) -> str:
    """The text format of one scrape."""
    from prometheus_client import generate_latest

    return generate_latest(registry_of(collector)).decode()


def serve(collector: ProjectMetrics, port: int, bind: str) -> Callable[[], None]:
    """Serve /metrics on `bind:port` in a background thread; returns the function to stop it."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=bind, registry=registry_of(collector))
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {bind}:{port}: {exc.strerror or exc}",
                         hint="choose another --port (or stop what listens there)") from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop

