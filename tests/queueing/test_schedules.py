"""Schedules executed by workers: each occurrence enqueued once, whatever the number of
workers; catch-up after downtime (an injected clock); `tether schedule list|run`."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from conftest import git, write
from feedback.receivers import http_receiver
from helpers import exp_refs, record_of
from queueing.conftest import start_worker, tether
from queueing.servers import RedisServer
from tether.feedback.scheduler import BY_HAND, SCHEDULED, Scheduler, list_schedules, run_now
from tether.queue.base import Entry
from tether.queue.client import open_queue
from tether.queue.embedded import EmbeddedQueue
from tether.queue.worker import Worker, WorkerOptions

NIGHTLY = """\
schedules:
  nightly: {cron: "0 3 * * *", run: {args: ["-S", "lr=0.5"]}, catchup: CATCHUP}
"""


def _commit_schedules(root: Path, text: str) -> str:
    write(root / ".tether" / "config.yaml", text)
    git(root, "add", "-f", ".tether/config.yaml")
    git(root, "commit", "-q", "-m", "schedules")
    return git(root, "rev-parse", "HEAD")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize("catchup", ["once", "skip"])
def test_a_worker_fires_on_time_and_catches_up_after_downtime(project: Path,
                                                              catchup: str) -> None:
    main = _commit_schedules(project, NIGHTLY.replace("CATCHUP", catchup))
    write(project / "params.yaml", "lr: 9\nepochs: 1\n")  # uncommitted: not what runs
    queue = EmbeddedQueue(project / ".tether" / "queue.db", project / ".tether" / "logs")
    try:
        scheduler = Scheduler(project, queue, worker="host-a:1")
        assert scheduler.tick(at("2026-11-29T14:00:00")) == []  # new: waits for 03:00
        first = scheduler.tick(at("2026-11-30T03:00:10"))
        assert [(f.schedule.name, f.occurrence) for f in first] == [
            ("nightly", at("2026-11-30T03:00:00"))]
        assert scheduler.tick(at("2026-11-30T03:00:11")) == []
        other = Scheduler(project, queue, worker="host-b:2")  # a second worker, same state
        assert other.tick(at("2026-11-30T03:00:12")) == []
        # No worker runs from then until 12:00 three days later: three nights missed.
        late = other.tick(at("2026-12-03T12:00:00"))
        assert other.tick(at("2026-12-03T12:00:01")) == []
        entries = queue.entries()
        fired = queue.fired()["nightly"]
    finally:
        queue.close()
    if catchup == "once":
        assert [f.occurrence for f in late] == [at("2026-12-03T03:00:00")]
        assert (fired.occurrence, fired.worker) == (at("2026-12-03T03:00:00"), "host-b:2")
        assert len(entries) == 2
    else:
        assert late == [] and len(entries) == 1
        assert (fired.occurrence, fired.worker) == (at("2026-11-30T03:00:00"), "host-a:1")
    assert fired.result.startswith(f"queued {entries[-1].id} {entries[-1].name}")
    assert {(e.baseline, e.snapshot, e.overrides) for e in entries} == {(main, main,
                                                                         ("lr=0.5",))}
    assert entries[0].message == "schedule:nightly (2026-11-30T03:00:00Z)"


SMOKE = """\
schedules:
  smoke: {every: 2s, run: {args: ["train", "-S", "epochs=2"]}}
"""


def test_three_workers_enqueue_each_occurrence_exactly_once(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    main = _commit_schedules(project, SMOKE)
    _each_occurrence_once(project, workers, main, 3)


def test_two_celery_workers_enqueue_each_occurrence_exactly_once(
    project: Path, workers: list[subprocess.Popen[str]], redis_server: RedisServer
) -> None:
    queue = {"backend": "celery", "broker": redis_server.url, "git_remote": None,
             "namespace": f"s{uuid.uuid4().hex[:10]}"}
    main = _commit_schedules(project, yaml.safe_dump({"queue": queue}) + SMOKE)
    _each_occurrence_once(project, workers, main, 2)


def test_a_following_worker_fires_and_runs_schedules_once_beside_a_plain_one(
    project: Path, workers: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    main = _commit_schedules(project, SMOKE)
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(project, "remote", "add", "origin", str(bare))
    git(project, "push", "-q", "origin", "HEAD:refs/heads/main")
    # Alone, with passes 30 s apart: what a schedule queues runs at once all the same.
    follower = start_worker(project, "--follow", "origin")
    workers.append(follower)
    deadline = time.monotonic() + 90
    done: list[str] = []
    while time.monotonic() < deadline and len(done) < 2:
        time.sleep(0.5)
        done = [e.message for e in _entries(project) if e.state == "done"]
    follower.send_signal(signal.SIGTERM)
    log = follower.communicate(timeout=120)[1]
    assert len(done) >= 2 and all(m.startswith("schedule:smoke (") for m in done), log
    assert "event=schedule_fired" in log and "event=entry_done" in log
    workers.remove(follower)
    # Beside a plain worker: each occurrence once, whichever of them claims it.
    _each_occurrence_once(project, workers, main, [(), ("--follow", "origin")])


def _entries(project: Path) -> list[Entry]:
    queue = open_queue(project)
    try:
        return queue.entries()
    finally:
        queue.close()


def _each_occurrence_once(project: Path, workers: list[subprocess.Popen[str]], main: str,
                          count: int | list[tuple[str, ...]]) -> None:
    tether(project, "run", "--queue", "-n", "warm-up")  # creates the queue's state
    before = {entry.id for entry in _entries(project)}
    for args in [()] * count if isinstance(count, int) else count:
        workers.append(start_worker(project, *args))
    deadline = time.monotonic() + 90
    fired: list[str] = []
    earlier = json.loads(tether(project, "schedule", "list", "--json").stdout)["last"]
    while time.monotonic() < deadline:
        listed = json.loads(tether(project, "schedule", "list", "--json").stdout)
        if listed["last"] not in (None, earlier):
            fired.append(listed["last"]["occurrence"])
        if len(set(fired)) >= 5:
            break
        time.sleep(0.5)
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    logs = [proc.communicate(timeout=120)[1] for proc in workers]
    # The workers' logfmt lines: event=schedule_fired schedule=smoke occurrence=... result=...
    lines = [dict(pair.split("=", 1) for pair in shlex.split(line) if "=" in pair)
             for log in logs for line in log.splitlines() if "event=schedule_fired" in line]
    lines = [line for line in lines if line.get("schedule") == "smoke"]
    occurrences = [line["occurrence"] for line in lines]
    assert len(set(occurrences)) >= 5, logs
    assert Counter(occurrences).most_common(1)[0][1] == 1, lines  # never twice
    assert all(line["result"].startswith("queued ") for line in lines), lines
    entries = [e for e in _entries(project) if e.name != "warm-up" and e.id not in before]
    messages = [entry.message for entry in entries]
    assert sorted(messages) == sorted(f"schedule:smoke ({o})" for o in occurrences)
    assert len(set(messages)) == len(messages)
    # What ran is the main branch's commit with the schedule's arguments.
    done = [entry for entry in entries if entry.state == "done"]
    assert done
    for entry in done:
        record = record_of(project, str(entry.result_ref))
        assert record["baseline"] == main
        assert record["params"]["params.yaml"]["epochs"] == 2  # type: ignore[index]


def test_schedule_run_enqueues_now_and_list_shows_it(project: Path) -> None:
    main = _commit_schedules(project, NIGHTLY.replace("CATCHUP", "once"))
    out = tether(project, "schedule", "run", "nightly")
    entry_id, name = out.stdout.split()[:2]
    queue = open_queue(project)
    try:
        entries = queue.entries()
    finally:
        queue.close()
    assert [(e.id, e.name, e.baseline, e.message) for e in entries] == [
        (entry_id, name, main, "schedule:nightly (by hand)")]
    tether(project, "worker", "--exit-when-idle")
    [ref] = [r for r in exp_refs(project) if r.endswith(f"/{name}")]
    assert record_of(project, ref)["params"]["params.yaml"]["lr"] == 0.5  # type: ignore[index]
    listed = tether(project, "schedule", "list").stdout
    assert "nightly: cron 0 3 * * * (UTC), run -S lr=0.5 (queue default, catchup once)" in listed
    [last] = [line for line in listed.splitlines() if line.startswith("  last: ")]
    assert last.endswith(f" by hand by {socket.gethostname()}:{_pid_of(last)}: "
                         f"queued {entry_id} {name}"), listed
    assert "  last scheduled: never fired" in listed  # by hand is not an occurrence
    [row] = [json.loads(line) for line in tether(project, "schedule", "list",
                                                 "--json").stdout.splitlines()]
    assert row["last"]["how"] == "by hand" and row["last"]["occurrence"] is None
    assert row["last_by_hand"] == row["last"] and row["last_scheduled"] is None
    missing = tether(project, "schedule", "run", "nightli", check=False)
    assert missing.returncode == 2 and "did you mean 'nightly'?" in missing.stderr


def _pid_of(line: str) -> str:
    return line.split(": queued")[0].rsplit(":", 1)[1]


def test_a_run_by_hand_takes_no_occurrences_place(project: Path) -> None:
    """By hand between two occurrences: the next one fires; by hand after a missed
    one: it is still caught up. `list` shows the latest of either kind."""
    _commit_schedules(project, NIGHTLY.replace("CATCHUP", "once"))
    queue = EmbeddedQueue(project / ".tether" / "queue.db", project / ".tether" / "logs")
    try:
        scheduler = Scheduler(project, queue, worker="host-a:1")
        assert len(scheduler.tick(at("2026-11-30T03:00:10"))) == 1
        hand = run_now(project, queue, "nightly", now=at("2026-11-30T10:00:00"))
        [row] = list_schedules(project, queue, now=at("2026-11-30T10:00:01"))
        assert row.latest == (BY_HAND, queue.by_hand()["nightly"])
        assert row.last is not None and row.last.occurrence == at("2026-11-30T03:00:00")
        assert row.by_hand is not None and row.by_hand.result == hand.result
        [fired] = scheduler.tick(at("2026-12-01T03:00:01"))  # not swallowed
        assert fired.occurrence == at("2026-12-01T03:00:00")
        [row] = list_schedules(project, queue, now=at("2026-12-01T03:00:02"))
        assert row.latest is not None and row.latest[0] == SCHEDULED
        # No worker on the night of the 2nd; by hand at 10:00, a worker again at 11:00.
        run_now(project, queue, "nightly", now=at("2026-12-02T10:00:00"))
        [caught] = scheduler.tick(at("2026-12-02T11:00:00"))
        assert caught.occurrence == at("2026-12-02T03:00:00")
        assert len(queue.entries()) == 5  # 3 occurrences, 2 by hand
    finally:
        queue.close()


def test_a_bad_schedule_stops_the_worker_with_a_clear_error(project: Path) -> None:
    _commit_schedules(project, "schedules:\n  nightly: {cron: '0 25 * * *', rerun: x}\n")
    for args in (("worker", "--exit-when-idle"), ("schedule", "list"),
                 ("schedule", "run", "nightly")):
        proc = tether(project, *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert ".tether/config.yaml:2: schedules.nightly.cron: '0 25 * * *' is not a valid " \
            "cron expression" in proc.stderr
        assert "unknown key 'rerun'" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_tick_hook_runs_inside_the_embedded_worker(project: Path) -> None:
    """The queue layer knows nothing of schedules: it calls the hook it is given."""
    ticks: list[float] = []
    queue = EmbeddedQueue(project / ".tether" / "queue.db", project / ".tether" / "logs")
    clock = iter(range(1000, 100000))
    try:
        options = WorkerOptions(exit_when_idle=True, warm=False, poll=0.05,
                                clock=lambda: float(next(clock)), on_tick=ticks.append,
                                tick_every=0.01)
        Worker(project, queue, options).run()
    finally:
        queue.close()
    assert ticks and ticks == sorted(ticks)


def test_a_fired_schedule_is_a_cloudevent(project: Path) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    main = _commit_schedules(project, NIGHTLY.replace("CATCHUP", "once"))
    with http_receiver() as receiver:
        env = {"TETHER_EVENTS": receiver.url("http", "/events")}
        out = tether(project, "schedule", "run", "nightly", env=env).stdout
        [received] = receiver.wait_for(1)
    event = from_http_event(HTTPMessage(
        headers={k.lower(): v for k, v in received.headers.items()}, body=received.body))
    assert (event.get_specversion(), event.get_type(), event.get_subject()) == (
        "1.0", "dev.tether.schedule.fired", "schedules/nightly")
    data = event.get_data()
    assert isinstance(data, dict)
    assert (data["schedule"], data["action"], data["occurrence"]) == ("nightly", "run", None)
    [entry] = data["entries"]
    assert (entry["id"], entry["name"], entry["baseline"]) == (*out.split()[:2], main)
    local = [json.loads(line) for line in
             (project / ".tether" / "events.jsonl").read_text().splitlines()]
    assert [e["id"] for e in local] == [event.get_id()]


def test_a_repro_schedule_queues_a_reproduction_of_the_last_main_build(project: Path) -> None:
    _commit_schedules(project, 'schedules:\n  nightly-repro: {cron: "0 3 * * *", '
                      'repro: last-main-build, queue: checks}\n')
    tether(project, "run", "-n", "base")
    before = set(exp_refs(project))
    queue = EmbeddedQueue(project / ".tether" / "queue.db", project / ".tether" / "logs")
    try:
        [fired] = Scheduler(project, queue, worker="host-a:1").tick(at("2026-11-30T03:00:05"))
        assert fired.error is None and [(e.name, e.queue) for e in fired.entries] == [
            ("base-repro", "checks")]  # the schedule's queue:
        assert queue.fired()["nightly-repro"].result == (
            f"queued {fired.entries[0].id} base-repro")
    finally:
        queue.close()
    tether(project, "worker", "--exit-when-idle")  # serves default: not its queue
    assert {r for r in set(exp_refs(project)) - before if r.startswith("refs/tether/exps/")} \
        == set()
    tether(project, "worker", "--queue", "checks", "--exit-when-idle")
    [ref] = {r for r in set(exp_refs(project)) - before if r.startswith("refs/tether/exps/")}
    record = record_of(project, ref)
    assert record["status"] == "success"
    assert record["reproduces"]["name"] == "base"  # type: ignore[index]
    assert record["reproduces"]["origin"] == "schedule:nightly-repro"  # type: ignore[index]


def test_repro_queue_takes_a_queue_name_as_run_queue_does(project: Path) -> None:
    tether(project, "run", "-n", "base")
    named = tether(project, "repro", "base", "--queue", "checks").stdout
    bare = tether(project, "repro", "--queue", "base").stdout  # EXP, on the default queue
    assert "on queue checks" in named and "on queue default" in bare
    queue = open_queue(project)
    try:
        assert sorted(e.queue for e in queue.entries()) == ["checks", "default"]
    finally:
        queue.close()
    bad = tether(project, "repro", "base", "--queue", "a b", check=False)
    assert bad.returncode == 2 and "--queue" in bad.stderr
    none = tether(project, "repro", "--queue", check=False)
    assert none.returncode == 2 and "EXP" in none.stderr
