"""Notifications and lifecycle events, with real receivers on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from feedback.receivers import free_port, http_receiver, smtp_receiver
from helpers import exp_refs, only_record, record_of
from tether.feedback.delivery import Outbox, read_journal
from tether.feedback.events import new_event
from tether.feedback.notify import Notice, display_url
from tether.feedback.watch import learned_expected

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    outs: [out/data.txt]
  train:
    cmd: python train.py
    deps: [out/data.txt, train.py]
"""
SLACK = "slack://T0AAAA1/B0BBBB2/xoxsecretpathtoken1"
TRAIN_OK = "print('epoch 1 loss 0.5')\nprint('done')\n"
TRAIN_FAIL = ("import sys\nfor i in range(30):\n    print(f'line {i}')\n"
              "print('boom: out of memory', flush=True)\nsys.exit(3)\n")


@pytest.fixture
def project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "train.py", TRAIN_OK)
    write(repo / "prepare.py", "import os\nos.makedirs('out', exist_ok=True)\n"
          "open('out/data.txt', 'w').write('d')\n")
    write(repo / ".gitignore", "out/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


def test_failure_notifies_once_and_success_is_silent(project: Path) -> None:
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url()}
        ok = run_tether(project, "run", "-n", "good", env=env)
        assert ok.returncode == 0, ok.stderr
        assert receiver.requests == []  # delivery is joined at exit: nothing was sent

        write(project / "train.py", TRAIN_FAIL)
        failed = run_tether(project, "run", "-n", "bad", env=env)
        assert failed.returncode == 1, failed.stderr
        [message] = receiver.wait_for(1)
        body = message.json()
        assert "bad" in body["title"] and "failed" in body["title"]
        assert "boom: out of memory" in body["message"]  # the last lines of the log
        assert "line 29" in body["message"] and "line 0\n" not in body["message"]
        assert "tether logs bad" in body["message"]
        assert "train" in body["message"]
        assert message.headers["Idempotency-Key"] == body["id"]
        assert body["type"] == "failure"

    status = run_tether(project, "notify", "status")
    assert status.returncode == 0, status.stderr
    assert "✔ failed" in status.stdout
    assert len(receiver.requests) == 1


def test_mailto_through_a_real_smtp_server(project: Path) -> None:
    pytest.importorskip("apprise")
    write(project / "train.py", TRAIN_FAIL)
    with smtp_receiver() as (smtp, port):
        url = (f"mailto://localhost:{port}/?to=ops@example.com&from=tether@example.com"
               f"&smtp=127.0.0.1&mode=insecure")
        write(project / ".tether/config.local.yaml", f"notify:\n  urls: ['{url}']\n")
        proc = run_tether(project, "run", "-n", "mailed", env={"TETHER_NOTIFY_WAIT": "20"})
        assert proc.returncode == 1, proc.stderr
        [mail] = smtp.wait_for(1)
    assert "mailed" in mail["Subject"]
    text = mail.get_payload(decode=True) if not mail.is_multipart() else \
        mail.get_payload(0).get_payload(decode=True)
    assert b"boom: out of memory" in text


def test_a_stall_notifies(repo: Path) -> None:
    write(repo / "tether.yaml", """\
stages:
  quiet:
    cmd: python -c "print('hi', flush=True); import time; time.sleep(30)"
    stall_timeout: 1s
""")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "stall")
    with http_receiver() as receiver:
        proc = run_tether(repo, "run", "-n", "quiet", env={"TETHER_NOTIFY": receiver.url()})
        assert proc.returncode == 125, proc.stderr
        [message] = receiver.wait_for(1)
    body = message.json()
    assert body["event"] == "stalled"
    assert "quiet" in body["title"] and "hi" in body["message"]


def test_a_reminder_arrives_while_the_run_goes_on_and_the_run_then_succeeds(
    repo: Path,
) -> None:
    write(repo / "tether.yaml", """\
stages:
  long:
    cmd: python wait.py
    expected: 1s
""")
    write(repo / "wait.py", "import os, time\nprint('waiting', flush=True)\n"
          "while not os.path.exists('go'):\n    time.sleep(0.05)\nprint('went')\n")
    write(repo / ".gitignore", "go\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "long")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url()}
        proc = subprocess.Popen([sys.executable, "-m", "tether", "run", "-n", "long"], cwd=repo,
                                env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            reminder = receiver.wait_for(1)[0]  # the next one is due 1 s later
            assert proc.poll() is None  # still running
            (repo / "go").write_text("")
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        body = reminder.json()
        assert body["event"] == "reminder" and "long" in body["title"]
        assert "Reminder 1 of 3" in body["message"] and "waiting" in body["message"]
        assert all(r.json()["event"] == "reminder" for r in receiver.requests)
    assert only_record(repo)["status"] == "success"


def test_429_retry_after_gets_the_message_once_after_the_wait(project: Path) -> None:
    write(project / "train.py", TRAIN_FAIL)
    with http_receiver() as receiver:
        receiver.script = [(429, {"Retry-After": "1"})]
        proc = run_tether(project, "run", "-n", "limited",
                          env={"TETHER_NOTIFY": receiver.url(), "TETHER_NOTIFY_WAIT": "10"})
        assert proc.returncode == 1, proc.stderr
        [accepted] = receiver.wait_for(1)
        refused, again = receiver.requests
    assert refused.status == 429 and again is accepted
    assert again.at - refused.at >= 1.0  # Retry-After was honoured
    assert refused.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]
    assert len(receiver.accepted) == 1


def test_an_unreachable_receiver_changes_nothing_about_the_run(project: Path) -> None:
    write(project / "train.py", TRAIN_FAIL)
    quiet = run_tether(project, "run", "--force", "-n", "plain")
    port = free_port()  # nothing listens there
    secret_url = f"json://ops:s3cretPassw0rd@127.0.0.1:{port}/hook?token=abcdef0123456789"
    started = time.monotonic()
    proc = run_tether(project, "run", "--force", "-n", "unheard",
                      env={"TETHER_NOTIFY": f"{secret_url} {SLACK}", "TETHER_NOTIFY_WAIT": "2"})
    took = time.monotonic() - started
    assert proc.returncode == quiet.returncode == 1, proc.stderr
    assert took < 20  # at most the bounded wait on top of the run
    refs = exp_refs(project)
    plain = record_of(project, next(r for r in refs if r.endswith("/plain")))
    unheard = record_of(project, next(r for r in refs if r.endswith("/unheard")))
    assert unheard["status"] == plain["status"] == "failed"
    assert [(s["name"], s["status"], s["exit_code"]) for s in unheard["stages"]] == \
        [(s["name"], s["status"], s["exit_code"]) for s in plain["stages"]]

    status = run_tether(project, "notify", "status")
    assert "✘" in status.stdout, status.stdout
    # Still retrying when the run ended: abandoned, with the tries made and why they failed.
    [dead] = [line for line in status.stdout.splitlines() if "json://" in line]
    assert "abandoned" in dead and "last try: cannot connect" in dead, dead
    assert "(attempts 0)" not in dead, dead
    everything = status.stdout + proc.stderr + json.dumps(unheard)
    everything += (project / ".tether/notify/deliveries.jsonl").read_text()
    for secret in ("s3cretPassw0rd", "abcdef0123456789", "xoxsecretpathtoken1", "T0AAAA1"):
        assert secret not in everything


def test_notify_test_says_which_urls_failed(project: Path) -> None:
    with http_receiver() as receiver:
        dead = f"json://127.0.0.1:{free_port()}/nobody"
        proc = run_tether(project, "notify", "test",
                          env={"TETHER_NOTIFY": f"{receiver.url()} {dead}"})
        assert proc.returncode != 0
        assert len(receiver.wait_for(1)) == 1
    lines = proc.stdout.splitlines()
    assert any(line.startswith("✔ json://127.0.0.1") for line in lines), proc.stdout
    assert any(line.startswith("✘ json://127.0.0.1") and "cannot connect" in line
               for line in lines), proc.stdout


def test_committed_config_refuses_urls_with_credentials(project: Path) -> None:
    with http_receiver() as receiver:
        write(project / ".tether/config.yaml",
              f"notify:\n  urls: ['json://u:hunter2hunter2@127.0.0.1:{receiver.port}/x']\n")
        write(project / "train.py", TRAIN_FAIL)
        proc = run_tether(project, "run", "-n", "refused")
        assert proc.returncode == 1
        assert "holds credentials" in proc.stderr and "hunter2hunter2" not in proc.stderr
        assert receiver.requests == []


def test_lifecycle_events_are_cloudevents_in_order(project: Path) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    with http_receiver() as receiver:
        env = {"TETHER_EVENTS": receiver.url("http", "/events")}
        assert run_tether(project, "run", "-n", "first", env=env).returncode == 0
        write(project / "train.py", TRAIN_FAIL)
        assert run_tether(project, "run", "-n", "second", env=env).returncode == 1
        # 6 events of the first run, 4 of the second (prepare is skipped); waiting for
        # more would only wait out the timeout. The journal check below sees a missing one.
        received = receiver.wait_for(10)
    events = [from_http_event(HTTPMessage(headers={k.lower(): v for k, v in r.headers.items()},
                                          body=r.body)) for r in received]
    assert all(e.get_specversion() == "1.0" for e in events)
    ids = [e.get_id() for e in events]
    assert len(set(ids)) == len(ids)
    by_run: dict[str, list[tuple[str, str]]] = {}
    for event in events:
        data = event.get_data()
        assert isinstance(data, dict)
        by_run.setdefault(data["name"], []).append(
            (event.get_extension("sequence"), event.get_type().removeprefix("dev.tether.run.")))
        assert event.get_subject().startswith("refs/tether/exps/")
        assert event.get_source()
    for name, end in (("first", "finished"), ("second", "failed")):
        sequence = [seq for seq, _ in by_run[name]]
        assert sequence == sorted(sequence)
        assert [kind for _, kind in by_run[name]] == [
            "started", "stage.started", "stage.finished", "stage.started", "stage.finished",
            end] or name == "second"
    kinds = [kind for _, kind in by_run["second"]]
    assert kinds[0] == "started" and kinds[-1] == "failed"
    local = [json.loads(line) for line in
             (project / ".tether/events.jsonl").read_text().splitlines()]
    assert [e["id"] for e in local] == ids


def test_a_queued_failure_notifies_from_the_worker(project: Path) -> None:
    write(project / "train.py", TRAIN_FAIL)
    git(project, "commit", "-qam", "fail")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "TETHER_EVENTS": receiver.url("http", "/ev")}
        queued = run_tether(project, "run", "--queue", "-n", "queued-bad", env=env)
        assert queued.returncode == 0, queued.stderr
        worker = run_tether(project, "worker", "--exit-when-idle", "--ok-on-failed-runs",
                            "--backoff", "0.1", env=env, timeout=300)
        assert worker.returncode == 0, worker.stderr
        receiver.wait_for(1)
    notices = [r.json() for r in receiver.accepted if r.path == "/hook"]
    assert len(notices) == 1, notices
    assert notices[0]["event"] == "failed" and "queued-bad" in notices[0]["title"]
    assert "boom: out of memory" in notices[0]["message"]
    kinds = [r.json()["type"] for r in receiver.accepted if r.path == "/ev"]
    assert kinds[:2] == ["dev.tether.run.queued", "dev.tether.run.started"], kinds
    assert kinds[-1] == "dev.tether.run.failed"


def test_a_queued_reminder_quotes_the_stages_output_not_the_childs_log_lines(
        project: Path) -> None:
    write(project / "tether.yaml", SPEC.replace("deps: [out/data.txt, train.py]\n",
                                                "deps: [out/data.txt, train.py]\n"
                                                "    expected: 1s\n"))
    write(project / "train.py", "import time\nprint('epoch 1 loss 0.5', flush=True)\n"
          "time.sleep(3)\nprint('done')\n")
    git(project, "commit", "-qam", "a slow train")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url()}
        assert run_tether(project, "run", "--queue", "-n", "slow", env=env).returncode == 0
        worker = run_tether(project, "--log-format", "logfmt", "worker", "--exit-when-idle",
                            env=env, timeout=300)
        assert worker.returncode == 0, worker.stderr
        notice = receiver.wait_for(1)[0]
    body = notice.json()
    assert body["event"] == "reminder", body
    quoted = body["message"].split("Last lines of the log:\n", 1)[1]
    assert quoted.startswith("epoch 1 loss 0.5"), quoted
    assert "event=" not in quoted and "logger=" not in quoted, quoted


# -- delivery, with the Outbox driven directly --------------------------------------


def _notice(event_id: str) -> Notice:
    return Notice(id=event_id, event="failed", title="t", body="b", severity="failure")


def test_a_json_webhook_that_timed_out_after_the_body_is_not_sent_twice(tmp_path: Path) -> None:
    with http_receiver() as receiver:
        receiver.delays = [2.0]
        outbox = Outbox(tmp_path, timeout=0.5, backoff=0.05)
        outbox.notify(_notice("run1:failed"), [receiver.url()])
        outbox.close(10)
        receiver.wait_for(1, timeout=5)
        assert len(receiver.requests) == 1  # no blind retry: it may have arrived
    [entry] = read_journal(tmp_path)
    assert not entry["ok"] and "unknown whether it arrived" in entry["error"]


def test_a_cloudevents_sink_is_retried_after_a_timeout_with_the_same_id(tmp_path: Path) -> None:
    event = new_event("failed", source="urn:test", subject="refs/tether/exps/x/y",
                      data={"name": "y"}, sequence=1)
    with http_receiver() as receiver:
        receiver.delays = [2.0]
        outbox = Outbox(tmp_path, timeout=0.5, backoff=0.05)
        outbox.publish(event, [receiver.url("http", "/events")])
        outbox.close(10)
        receiver.wait_for(2, timeout=5)
    first, second = receiver.requests
    assert first.json()["id"] == second.json()["id"] == event["id"]
    assert read_journal(tmp_path)[-1]["ok"]


def test_an_event_delivered_once_is_not_delivered_again(tmp_path: Path) -> None:
    with http_receiver() as receiver:
        for _ in range(2):  # two processes, say: the journal remembers
            outbox = Outbox(tmp_path)
            outbox.notify(_notice("run2:failed"), [receiver.url()])
            outbox.notify(_notice("run2:failed"), [receiver.url()])
            outbox.close(5)
        assert len(receiver.wait_for(1)) == 1
        assert len(receiver.requests) == 1


@pytest.mark.parametrize(("durations", "expected"), [
    ([1.0] * 4, None),
    ([1.0, 2.0, 3.0, 4.0, 10.0], 15.0),
    ([float(i) for i in range(1, 21)], 27.0),
])
def test_learned_expected_is_p90_times_1_5(durations: list[float],
                                          expected: float | None) -> None:
    assert learned_expected(durations) == expected


def test_display_url_hides_tokens() -> None:
    assert display_url("slack://T1/B2/secrettoken").startswith("slack://*** (#")
    shown = display_url("json://user:pw123456@hooks.example.org:8080/path/tok?x=1")
    assert shown.startswith("json://hooks.example.org:8080/… (#")
    assert "pw123456" not in shown and "tok" not in shown


def test_a_reminder_with_a_learned_expected_duration(repo: Path) -> None:
    write(repo / "tether.yaml", "stages:\n  step:\n    cmd: python step.py\n")
    write(repo / "step.py", "import os, time\nprint('working', flush=True)\n"
          "while os.path.exists('slow') and not os.path.exists('go'):\n    time.sleep(0.05)\n")
    write(repo / ".gitignore", "slow\ngo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "step")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url()}
        for i in range(5):
            assert run_tether(repo, "run", "--force", "-n", f"quick{i}", env=env).returncode == 0
        assert receiver.requests == []
        (repo / "slow").write_text("")
        proc = subprocess.Popen([sys.executable, "-m", "tether", "run", "--force", "-n", "slow"],
                                cwd=repo, env={**os.environ, **env}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # The learned duration of a stage this short is a fraction of a second, so
            # reminders 2 and 3 may land before the test thread wakes: the first one counts.
            reminders = receiver.wait_for(1)
            (repo / "go").write_text("")
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
    assert 1 <= len(reminders) <= 3
    assert all("Reminder" in r.json()["message"] for r in reminders), [r.json() for r in reminders]
    message = reminders[0].json()["message"]
    assert "learned: p90 of the last 5 successful runs" in message, message


def test_an_interrupted_run_notifies_and_events_say_so(project: Path) -> None:
    import signal

    write(project / "train.py", "import time\nprint('training', flush=True)\n"
          "open('out/training', 'w').close()\ntime.sleep(60)\n")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "TETHER_EVENTS": receiver.url("http", "/ev")}
        proc = subprocess.Popen([sys.executable, "-m", "tether", "run", "-n", "stopped"],
                                cwd=project, env={**os.environ, **env}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with receiver.changed:  # the train stage has started
                receiver.changed.wait_for(lambda: any(
                    r.path == "/ev" and r.json()["type"].endswith("stage.started")
                    and r.json()["data"]["stage"] == "train" for r in receiver.requests), 60)
            deadline = time.monotonic() + 60
            while not (project / "out" / "training").exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling for the stage's first output, not timing it
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        notices = [r.json() for r in receiver.accepted if r.path == "/hook"]
    assert [n["event"] for n in notices] == ["interrupted"]
    assert "training" in notices[0]["message"]
    assert only_record(project)["status"] == "interrupted"


def test_a_lost_entry_notifies(tmp_path: Path) -> None:
    from tether.feedback.listeners import QueueListener
    from tether.feedback.notify import FeedbackSettings
    from tether.feedback.watch import Feedback
    from tether.queue.base import MAX_LOST, Entry, QueueEvent

    with http_receiver() as receiver:
        feedback = Feedback(tmp_path, FeedbackSettings(urls=[receiver.url()]))
        entry = Entry(id="q1", name="far-away", baseline="0" * 40, snapshot="s",
                      snapshot_ref="r", run_id="run-q1", state="failed", lost=MAX_LOST,
                      worker="gpu-3:123",
                      error="worker gpu-3:123 lost (lease expired); gave up after 3 lost workers")
        QueueListener(feedback, tmp_path)(QueueEvent("failed", entry, entry.error or ""))
        feedback.close(5)
        [message] = receiver.wait_for(1)
    body = message.json()
    assert body["event"] == "lost" and "far-away" in body["title"]
    assert "gave up after 3 lost workers" in body["message"] and "gpu-3" in body["message"]


def test_urls_from_the_local_config_are_scrubbed_from_logs(project: Path) -> None:
    token = "xoxb-0123456789-abcdefghijkl"
    write(project / ".tether/config.local.yaml",
          f"notify:\n  urls: ['slack://{token}/C0123ABCD']\n")
    write(project / "train.py", f"print('token is {token}')\n")
    proc = run_tether(project, "run", "-n", "leaky", env={"TETHER_NOTIFY_WAIT": "0"})
    assert proc.returncode == 0, proc.stderr
    record = only_record(project)
    assert token not in json.dumps(record)
    log = subprocess.run(["git", "cat-file", "blob",
                          f"{next(iter(exp_refs(project)))}:.tether/logs/train.log"],
                         cwd=project, capture_output=True, text=True).stdout
    assert "token is [redacted:notify.urls]" in log


def test_a_gate_regression_notifies_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.feedback.listeners import notify_regressed

    assert run_tether(project, "run", "-n", "worse").returncode == 0
    ref = next(iter(exp_refs(project)))
    with http_receiver() as receiver:
        monkeypatch.setenv("TETHER_NOTIFY", receiver.url())
        for _ in range(2):  # the gate run again: the same event, not a second message
            notify_regressed(project, ref, "Regressed metrics: acc (regressed)")
        [message] = receiver.wait_for(1)
        assert len(receiver.requests) == 1
    body = message.json()
    assert body["event"] == "regressed" and "worse" in body["title"]
    assert "acc (regressed)" in body["message"]


def test_a_successful_run_imports_no_delivery_code(project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tether", "run", "-n", "cheap"],
        cwd=project, capture_output=True, text=True,
        env={**os.environ, "TETHER_NOTIFY": "json://127.0.0.1:9/hook slack://a/b/c"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = proc.stderr
    assert "tether.feedback.listeners" in imported  # the listener is there...
    for module in ("tether.feedback.delivery", "tether.feedback.events", "apprise",
                   "cloudevents", "urllib.request"):
        assert f" {module}\n" not in imported, module  # ...and nothing that sends


def test_an_event_sink_with_credentials_in_its_url_gets_them_as_basic_auth(
        project: Path) -> None:
    import base64

    with http_receiver() as receiver:
        sink = receiver.url("http", "/events").replace("://", "://ops:s3cr%40t-pass@")
        write(project / ".tether/config.local.yaml", f"events:\n  sinks: ['{sink}']\n")
        proc = run_tether(project, "run", "-n", "authed")
        assert proc.returncode == 0, proc.stderr
        received = receiver.wait_for(6)
    assert len(received) == 6, read_journal(project)
    expected = "Basic " + base64.b64encode(b"ops:s3cr@t-pass").decode()
    assert {r.headers.get("Authorization") for r in received} == {expected}
    assert all(r.path == "/events" for r in received)
    journal = read_journal(project)
    assert journal and all(entry["ok"] for entry in journal)
    assert "s3cr" not in proc.stderr + json.dumps(journal)


def test_notify_on_in_the_committed_config_is_obeyed_and_survives_remote_add(
        project: Path, tmp_path: Path) -> None:
    """`on` is a YAML 1.1 boolean: read as True, `notify.on` was ignored (and `tether
    remote add` rewrote it as `true:`)."""
    with http_receiver() as receiver:
        write(project / ".tether/config.yaml",
              "notify:\n  on: [failed, finished]  # successes too\n")
        env = {"TETHER_NOTIFY": receiver.url()}
        assert run_tether(project, "run", "-n", "first", env=env).returncode == 0
        [first] = receiver.wait_for(1)
        proc = run_tether(project, "remote", "add", "store", str(tmp_path / "store"))
        assert proc.returncode == 0, proc.stderr
        assert "true:" not in (project / ".tether/config.yaml").read_text()
        assert run_tether(project, "run", "-n", "second", "--force", env=env).returncode == 0
        received = receiver.wait_for(2)
    assert [r.json()["event"] for r in received] == ["finished", "finished"]
    assert "first" in first.json()["title"] and "second" in received[1].json()["title"]


def test_a_misspelt_notify_key_is_named_not_silently_ignored(project: Path) -> None:
    write(project / ".tether/config.yaml",
          "notify:\n  url: ['json://127.0.0.1:9/x']\n  on: [failed]\nevents:\n  locale: true\n")
    proc = run_tether(project, "notify", "status")
    said = proc.stderr
    assert "tether: warning: .tether/config.yaml: notify.url: unknown key, ignored " \
           "(did you mean urls?)" in said, said
    assert "events.locale: unknown key, ignored (did you mean local?)" in said, said
    assert "notify.on" not in said


@pytest.mark.parametrize(("origin", "source"), [
    ("https://user:tok@github.com/acme/vision.git", "https://github.com/acme/vision.git"),
    ("git@github.com:acme/vision.git", "ssh://github.com/acme/vision.git"),
    ("github.com:/srv/vision.git", "ssh://github.com/srv/vision.git"),
    ("../origin.git", None),  # a local path: its file URL
])
def test_event_source_is_a_uri_without_credentials(repo: Path, origin: str,
                                                   source: str | None) -> None:
    from tether.feedback.events import repository_source

    git(repo, "remote", "add", "origin", origin)
    expected = source or (repo / origin).resolve().as_uri()
    assert repository_source(repo) == expected
