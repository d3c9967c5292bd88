"""tether's own log lines: logfmt (or JSON) that parses back, with the run's context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_a_run_imports_no_logging_library(pipeline_project: Path) -> None:
    """Binding the run's context is free: structlog comes only with a first log line."""
    import subprocess
    import sys

    script = ("import sys\nfrom tether.cli.main import main\ncode = main(['run'])\n"
              "print(code, sorted(m for m in ('structlog', 'prometheus_client', 'rich')"
              " if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=pipeline_project,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split("\n")[-2] == "0 []", proc.stdout + proc.stderr
