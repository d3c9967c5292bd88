"""tether's own log lines: logfmt (or JSON) that parses back, with the run's context."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import git
from feedback.receivers import http_receiver
from obs.conftest import parse_logfmt, tether

LEADING = ["ts", "level", "event"]
ATTEMPT_KEYS = {"run_id", "exp", "entry", "attempt", "worker", "queue", "host"}


def _attempt_logs(root: Path) -> dict[str, list[str]]:
    """Each attempt's output.log, by entry id (its lines)."""
    logs = root / ".tether" / "queue" / "logs"
    return {path.parent.parent.name: path.read_text().splitlines()
            for path in sorted(logs.glob("*/*/output.log"))}


@pytest.mark.parametrize("backend_project", ["embedded", "celery-redis"], indirect=True)
def test_a_worker_run_logs_logfmt_with_the_run_context_everywhere(
    backend_project: Path,
) -> None:
    root = backend_project
    tether(root, "run", "--queue", "-n", "good")
    tether(root, "run", "--queue", "-n", "bad", "-S", "lr=-1")
    status = {e["name"]: e for e in map(json.loads, tether(
        root, "queue", "status", "--json").stdout.splitlines())}
    with http_receiver() as receiver:
        worker = tether(root, "worker", "--exit-when-idle", "--ok-on-failed-runs",
                        env={"TETHER_NOTIFY": receiver.url()})
        [notice] = receiver.wait_for(1)
    assert notice.json()["event"] == "failed"

    # The worker's stderr is tether's own lines only: every one parses, keys in order.
    worker_lines = [parse_logfmt(line) for line in worker.stderr.splitlines()]
    assert worker_lines and all(list(line)[:3] == LEADING for line in worker_lines)
    by_event = {(line["event"], line.get("exp")): line for line in worker_lines}
    bad_id = status["bad"]["id"]
    failed = by_event[("entry_failed", "bad")]
    assert set(failed) >= ATTEMPT_KEYS and failed["entry"] == bad_id
    assert by_event[("entry_done", "good")]["run_id"] == status["good"]["run_id"]
    sent = by_event[("notification_delivered", "bad")]
    assert sent["run_id"] == failed["run_id"] == status["bad"]["run_id"]
    assert sent["entry"] == bad_id and sent["notice"] == "failed"
    assert worker_lines[-1]["event"] == "worker_stopped"
    assert (worker_lines[-1]["done"], worker_lines[-1]["failed"]) == ("1", "1")

    # An attempt's log: the stages' output as it was, and the child's lines, all parsed.
    attempts = _attempt_logs(root)
    assert set(attempts) == {status["good"]["id"], bad_id}
    for entry_id, lines in attempts.items():
        run_id = next(s["run_id"] for s in status.values() if s["id"] == entry_id)
        ours = [parse_logfmt(line) for line in lines if not line.startswith("out: ")]
        assert ours and all(list(line)[:3] == LEADING for line in ours)
        assert {line["run_id"] for line in ours} == {run_id}
        assert all(set(line) >= ATTEMPT_KEYS for line in ours)
        stages = [line["stage"] for line in ours if line["event"].startswith("stage_")]
        assert stages[0] == "prepare" and stages[-1] == "train"
    bad_output = [line for line in attempts[bad_id] if line.startswith("out: ")]
    assert bad_output[-2:] == ["out: a negative learning rate", "out: gives up"]


def test_every_delivery_line_of_a_queued_run_carries_its_run_id(
    pipeline_project: Path,
) -> None:
    """The run's "started" (emitted as the entry is claimed) and "finished" events are
    delivered with the entry's context like its stages' events, so one run_id greps them."""
    root = pipeline_project
    tether(root, "run", "--queue", "-n", "one")
    [entry] = map(json.loads, tether(root, "queue", "status", "--json").stdout.splitlines())
    with http_receiver() as receiver:
        worker = tether(root, "worker", "--exit-when-idle",
                        env={"TETHER_EVENTS": receiver.url("http", "/events")})
    lines = [parse_logfmt(line) for line in worker.stderr.splitlines()]
    sent = {line["notice"]: line for line in lines
            if line["event"].startswith("notification_")}
    assert {"dev.tether.run.started", "dev.tether.run.finished"} <= set(sent)
    for notice, line in sent.items():
        assert (line.get("run_id"), line.get("exp"), line.get("entry")) == (
            entry["run_id"], "one", entry["id"]), notice


def test_json_format_and_a_traceback_stay_one_line(pipeline_project: Path) -> None:
    root = pipeline_project
    tether(root, "run", "--queue", "-n", "one")
    worker = tether(root, "--log-format", "json", "worker", "--exit-when-idle")
    lines = [json.loads(line) for line in worker.stderr.splitlines()]
    assert [list(line)[:3] for line in lines] == [LEADING] * len(lines)
    assert lines[-1]["event"] == "worker_stopped" and lines[-1]["done"] == 1
    child = [json.loads(line) for line in next(iter(_attempt_logs(root).values()))
             if not line.startswith("out: ")]
    assert {line["exp"] for line in child} == {"one"}

    # A multi-line value (a traceback) is one parseable line, in either format.
    script = ("from tether.logs import configure, get_logger\n"
              "import sys\nconfigure(sys.argv[1])\n"
              "try:\n    raise ValueError('first\\nsecond')\n"
              "except ValueError:\n    get_logger('t').exception('boom', path='a b')\n")
    import subprocess
    import sys

    for fmt, parse in (("logfmt", parse_logfmt), ("json", json.loads)):
        proc = subprocess.run([sys.executable, "-c", script, fmt], capture_output=True,
                              text=True, check=True)
        [line] = proc.stderr.splitlines()
        fields = parse(line)
        assert fields["event"] == "boom" and fields["level"] == "error"
        assert "ValueError: first\nsecond" in fields["exception"]
        assert fields["path"] == "a b"


def test_a_bad_log_format_is_a_usage_error(pipeline_project: Path) -> None:
    proc = tether(pipeline_project, "--log-format", "xml", "status", check=False)
    assert proc.returncode == 2 and "--log-format 'xml'" in proc.stderr
    proc = tether(pipeline_project, "worker", "--exit-when-idle", check=False,
                  env={"TETHER_LOG_FORMAT": "yaml"})
    assert proc.returncode == 2 and "TETHER_LOG_FORMAT 'yaml'" in proc.stderr


@pytest.mark.parametrize("how", [["run"], ["run", "--queue", "-n", "queued"]])
def test_a_run_imports_no_logging_library(pipeline_project: Path, how: list[str]) -> None:
    """Binding the run's context is free: structlog comes only with a first log line;
    in place or queued, a run that succeeds logs nothing and imports neither."""
    import subprocess
    import sys

    script = ("import sys\nfrom tether.cli.main import main\ncode = main(sys.argv[1:])\n"
              "print(code, sorted(m for m in ('structlog', 'prometheus_client', 'rich')"
              " if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script, *how], cwd=pipeline_project,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split("\n")[-2] == "0 []", proc.stdout + proc.stderr


def test_scheduler_lines_are_logfmt_with_their_keys(pipeline_project: Path) -> None:
    """A schedule that breaks in an unexpected way is one logfmt line, traceback and all;
    the worker goes on (the failure is in the result)."""
    import subprocess
    import sys

    script = (
        "import sys\nfrom pathlib import Path\nfrom tether.logs import bind\n"
        "from tether.feedback import scheduler\nfrom tether.feedback.schedules import Schedule\n"
        "def broken(*args):\n    raise RuntimeError('broker\\ngone')\n"
        "scheduler._enqueue = broken\n"
        "with bind(worker='vm:1', host='vm'):\n"
        "    fired = scheduler.fire(Path('.'), None, Schedule(name='nightly', every=60.0),"
        " now=120.0, occurrence=60.0, worker='vm:1')\n"
        "print(fired.result)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=pipeline_project,
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "TETHER_LOG_FORMAT": "logfmt"})
    assert proc.stdout == "failed: RuntimeError: broker\ngone\n"
    [line] = proc.stderr.splitlines()
    fields = parse_logfmt(line)
    assert list(fields)[:5] == [*LEADING, "worker", "host"]
    assert (fields["event"], fields["level"]) == ("schedule_failed", "error")
    assert fields["schedule"] == "nightly" and fields["occurrence"] == "1970-01-01T00:01:00Z"
    assert fields["logger"] == "tether.feedback.scheduler"
    assert "RuntimeError: broker\ngone" in fields["exception"]


def test_other_libraries_follow_their_level_and_tethers_lines_stay_at_info() -> None:
    """`tether worker --log-level` is the transport's level (configure(libraries=...));
    tether's own lines are kept from INFO whatever it is."""
    import subprocess
    import sys

    script = ("import logging, sys\nfrom tether.logs import configure, get_logger\n"
              "configure('logfmt', level='INFO', libraries=sys.argv[1])\n"
              "logging.getLogger('kombu.connection').debug('kombu_debug')\n"
              "logging.getLogger('celery.worker').warning('celery_warning')\n"
              "get_logger('tether.worker').debug('tether_debug')\n"
              "get_logger('tether.worker').info('tether_info')\n")
    events = {}
    for level in ("DEBUG", "ERROR"):
        proc = subprocess.run([sys.executable, "-c", script, level], capture_output=True,
                              text=True, check=True)
        events[level] = [parse_logfmt(line)["event"] for line in proc.stderr.splitlines()]
    assert events["DEBUG"] == ["kombu_debug", "celery_warning", "tether_info"]
    assert events["ERROR"] == ["tether_info"]


@pytest.mark.parametrize("backend_project", ["celery-redis"], indirect=True)
def test_a_queued_run_is_grepped_by_its_run_id_through_its_push(
    backend_project: Path, tmp_path: Path,
) -> None:
    root = backend_project
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    secret_url = "https://ci:s3cret@git.example.invalid/lab/origin.git"
    git(root, "config", f"url.{origin}.insteadOf", secret_url)  # credentials in the URL
    git(root, "remote", "add", "origin", secret_url)
    git(root, "push", "-q", "origin", "main")
    tether(root, "remote", "add", "store", str(tmp_path / "store"), "--default")
    tether(root, "run", "--queue", "-n", "shipped")
    [entry] = map(json.loads, tether(root, "queue", "status", "--json").stdout.splitlines())
    # --log-level is Celery's: tether's own lines (info) stay, the transport's are ERROR up.
    worker = tether(root, "worker", "--exit-when-idle", "--log-level", "ERROR")
    assert "s3cret" not in worker.stderr
    lines = [parse_logfmt(line) for line in worker.stderr.splitlines()]
    ours = [line for line in lines if line.get("run_id") == entry["run_id"]]
    events = [line["event"] for line in ours]
    assert "entry_done" in events and lines[-1]["event"] == "worker_stopped"
    [push] = [line for line in ours if line["event"] == "push"]
    assert set(push) >= ATTEMPT_KEYS and push["entry"] == entry["id"]
    assert push["refs"] == "1" and int(push["objects_sent"]) >= 2  # data/ and model/
    assert push["remote"] == "origin"  # as named; a URL is logged masked (below)
    assert push["ref"] == git(origin, "for-each-ref", "--format=%(refname)",
                              "refs/tether/exps/").strip()

    # A person's push and pull: the report as before; log lines only when asked for.
    human = tether(root, "push", "origin", "-A")
    assert "ts=" not in human.stderr and "refs: 1 up-to-date" in human.stderr
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "config", f"url.{origin}.insteadOf", secret_url)
    tether(clone, "remote", "add", "store", str(tmp_path / "store"), "--default")
    pulled = tether(clone, "--log-format", "json", "pull", secret_url, "-A")
    [line] = [json.loads(text) for text in pulled.stderr.splitlines() if text.startswith("{")]
    assert list(line)[:3] == LEADING and line["event"] == "pull"
    assert (line["refs"], line["refs_new"]) == (1, 1) and line["objects_received"] >= 2
    assert line["remote"] == "https://ci:***@git.example.invalid/lab/origin.git"
    assert "s3cret" not in pulled.stderr + pulled.stdout
    assert "tether: pull refs: 1 new" in pulled.stderr  # the report is unchanged
