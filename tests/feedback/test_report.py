"""`tether report`: the Markdown report, its size cap, and comments on a fake forge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether
from feedback.fakeforge import READ_TOKEN, WRITE_TOKEN, FakeForge
from feedback.fakes import commit, fake_experiment
from tether.feedback.report import GITHUB_LIMIT, fit, sparkline
from tether.record.record import StageRecord

MAIN = {"acc": 0.9, "loss": 0.3, "latency": 10.0}
LOG = "".join(f"epoch {i}: loss=0.{i}\n" for i in range(40)) + \
    "Traceback (most recent call last):\nValueError: bad ```fence``` in log\n"


@pytest.fixture
def project(repo: Path) -> Path:
    fake_experiment(repo, "sweep-a", MAIN, params={"train": {"lr": 0.1, "depth": 3}})
    git(repo, "switch", "-q", "-c", "feature")
    commit(repo, "feature work")
    fake_experiment(repo, "sweep-a", {"acc": 0.7, "loss": 0.31, "latency": 12.0},
                    params={"train": {"lr": 0.2, "depth": 3}},
                    steps={"train": [{"step": s, "loss": 1 / (s + 1), "acc": s / 50}
                                     for s in range(50)]})
    fake_experiment(repo, "sweep-b", {"acc": 0.5}, status="failed", stages=[
        StageRecord(name="prepare", status="success"),
        StageRecord(name="train", status="failed", exit_code=1,
                    log={"bytes": len(LOG), "text": LOG, "truncated": False})])
    return repo


def test_report_content(project: Path) -> None:
    proc = run_tether(project, "report", "--md")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    first = text.splitlines()[0]
    assert first.startswith("## tether: ❌ run failed — 2 experiments against the main build")
    summary = text.split("\n\n")[1]
    assert "| sweep-a | success | 3.5 s | ❌ regressed | `acc` |" in summary
    assert "| sweep-b | failed |" in summary
    section_a = text.split("### ")[1]
    assert section_a.index("| acc | 0.9 | 0.7 | -0.2 | -22.22% | ❌ **regressed** |") < \
        section_a.index("| loss |")  # regressions first
    assert "1 param differs" in section_a and "| train.lr | 0.1 | 0.2 |" in section_a
    assert "| loss | " in section_a and sparkline([1 / (s + 1) for s in range(50)]) in section_a
    section_b = text.split("### ")[2]
    assert "**Stage `train` failed** (exit 1)" in section_b
    assert "````text\nepoch 27: loss=0.27" in section_b  # the last 15 lines, fenced safely
    assert "epoch 26" not in section_b and "prepare" not in section_b
    assert (project / ".tether" / "reports" / "default.md").read_text() == text
    data = json.loads(run_tether(project, "report", "--json").stdout)
    assert data["verdict"] == "failed"
    assert [e["experiment"]["name"] for e in data["experiments"]] == ["sweep-a", "sweep-b"]
    terminal = run_tether(project, "report").stdout
    assert terminal.startswith("tether: ❌ run failed — 2 experiments") and "▼ REGRESSED" \
        in terminal


def test_sparkline() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▅▅▅"
    assert len(sparkline(list(range(1000)))) == 32


def test_fit_closes_what_it_cuts() -> None:
    text = "head\n<details><summary>x</summary>\n\n```text\n" + "line\n" * 100_000 + "```\n"
    cut = fit(text, 1000, ".tether/reports/default.md")
    assert len(cut) <= 1000
    assert cut.count("```") == 2 and cut.count("<details>") == cut.count("</details>")
    assert "`.tether/reports/default.md`" in cut and "trimmed" in cut


def _github_env(forge: FakeForge, tmp_path: Path, token: str | None) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    env = {"GITHUB_API_URL": forge.url, "GITHUB_REPOSITORY": "acme/models",
           "GITHUB_EVENT_PATH": str(event), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    if token:
        env["GITHUB_TOKEN"] = token
    return env


def _no_token_in(proc: Any, forge: FakeForge) -> None:
    for token in (WRITE_TOKEN, READ_TOKEN):
        assert token not in proc.stdout and token not in proc.stderr
        assert all(token not in json.dumps(c) for c in forge.comments.values())


def test_github_comment_posted_then_updated_in_place(project: Path, tmp_path: Path) -> None:
    with FakeForge() as forge:
        other = forge.add("LGTM, a human wrote this")
        env = _github_env(forge, tmp_path, WRITE_TOKEN)
        first = run_tether(project, "report", "--comment", env=env)
        assert first.returncode == 0, first.stderr
        assert "commented on pull request acme/models#7" in first.stderr
        posted = [c for c in forge.comments.values() if c["id"] != other]
        assert len(posted) == 1 and posted[0]["body"].startswith("<!-- tether-report:default -->")
        fake_experiment(project, "sweep-c", {"acc": 0.95})
        second = run_tether(project, "report", "--comment", env=env)
        assert "updated the comment on pull request" in second.stderr
        assert len(forge.comments) == 2
        assert "sweep-c" in forge.comments[posted[0]["id"]]["body"]
        assert [r["method"] for r in forge.requests] == ["GET", "POST", "GET", "PATCH"]
        assert forge.requests[-1]["path"] == f"/repos/acme/models/issues/comments/{posted[0]['id']}"
        assert forge.requests[0]["headers"]["authorization"] == f"Bearer {WRITE_TOKEN}"
        # Another report key keeps a comment of its own.
        run_tether(project, "report", "--comment", "--key", "nightly", env=env)
        assert len(forge.comments) == 3
        _no_token_in(second, forge)
    assert (tmp_path / "summary.md").read_text().count("## tether:") == 3


def test_gitlab_note_posted_then_updated_in_place(project: Path) -> None:
    with FakeForge() as forge:
        env = {"CI_API_V4_URL": f"{forge.url}/api/v4", "CI_PROJECT_ID": "42",
               "CI_MERGE_REQUEST_IID": "3", "GITLAB_TOKEN": WRITE_TOKEN}
        for _ in range(2):
            proc = run_tether(project, "report", "--comment", env=env)
            assert proc.returncode == 0, proc.stderr
        assert len(forge.comments) == 1
        assert [(r["method"], r["path"]) for r in forge.requests] == [
            ("GET", "/api/v4/projects/42/merge_requests/3/notes"),
            ("POST", "/api/v4/projects/42/merge_requests/3/notes"),
            ("GET", "/api/v4/projects/42/merge_requests/3/notes"),
            ("PUT", "/api/v4/projects/42/merge_requests/3/notes/101")]
        assert forge.requests[0]["headers"]["private-token"] == WRITE_TOKEN
        assert "authorization" not in forge.requests[0]["headers"]
        _no_token_in(proc, forge)


def test_read_only_token_warns_and_writes_summary(project: Path, tmp_path: Path) -> None:
    with FakeForge() as forge:
        env = _github_env(forge, tmp_path, READ_TOKEN)
        proc = run_tether(project, "report", "--comment", env=env)
        assert proc.returncode == 0
        assert "github refused the comment (HTTP 403)" in proc.stderr
        assert "read-only GITHUB_TOKEN" in proc.stderr
        assert "the report is in .tether/reports/default.md and the job summary" in proc.stderr
        assert forge.comments == {}
        _no_token_in(proc, forge)
    assert (tmp_path / "summary.md").read_text().startswith("## tether:")


def test_missing_token_warns(project: Path, tmp_path: Path) -> None:
    with FakeForge() as forge:
        proc = run_tether(project, "report", "--comment", env=_github_env(forge, tmp_path, None))
        assert proc.returncode == 0
        assert "GITHUB_TOKEN is not set: cannot comment on pull request" in proc.stderr
        assert forge.requests == []


def test_not_a_pull_request(project: Path) -> None:
    proc = run_tether(project, "report", "--comment", "--summary")
    assert proc.returncode == 0
    assert "--comment: no forge found" in proc.stderr
    assert "--summary: GITHUB_STEP_SUMMARY is not set" in proc.stderr


def test_size_cap_with_10000_metrics(repo: Path, tmp_path: Path) -> None:
    rules = {f"m{i:05d}": {"direction": "max", "tolerance": {"kind": "abs", "value": 0.0}}
             for i in range(10_000)}
    fake_experiment(repo, "big", {f"m{i:05d}": 1.0 for i in range(10_000)}, rules=rules)
    commit(repo, "change")
    fake_experiment(repo, "big", {**{f"m{i:05d}": 1.0 for i in range(10_000)},
                                  "m09999": 0.5}, rules=rules)
    with FakeForge() as forge:
        proc = run_tether(repo, "report", "--comment",
                          env=_github_env(forge, tmp_path, WRITE_TOKEN))
        assert proc.returncode == 0, proc.stderr
        (body,) = [c["body"] for c in forge.comments.values()]
    assert len(body) <= GITHUB_LIMIT
    assert "trimmed to fit the forge's limit of 65,536" in body
    assert "| m09999 | 1 | 0.5 |" in body  # the regression comes first, so it is kept
    full = (repo / ".tether" / "reports" / "default.md").read_text()
    assert len(full) > GITHUB_LIMIT and full.count("| m0") == 10_000


def test_push_event_is_not_a_pull_request(project: Path, tmp_path: Path) -> None:
    event = tmp_path / "push.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "commits": []}))
    proc = run_tether(project, "report", "--comment", env={
        "GITHUB_REPOSITORY": "acme/models", "GITHUB_EVENT_PATH": str(event),
        "GITHUB_TOKEN": WRITE_TOKEN})
    assert proc.returncode == 0
    assert "not a pull request event" in proc.stderr
    assert WRITE_TOKEN not in proc.stderr + proc.stdout


def test_token_is_not_in_a_target_repr() -> None:
    from tether.feedback.forge import detect

    target, _ = detect({"CI_API_V4_URL": "http://127.0.0.1:9/api/v4", "CI_PROJECT_ID": "1",
                        "CI_MERGE_REQUEST_IID": "2", "GITLAB_TOKEN": WRITE_TOKEN})
    assert target is not None and target.token == WRITE_TOKEN
    assert WRITE_TOKEN not in repr(target)
