"""Secret values never reach what tether stores, pushes or prints about remotes.

A realistic project (two stages, an output folder, git-ignored data, a failing
variant, a bare command, a queued run) runs with secrets planted in argv, `-m`,
uncommitted files, a URL password, MYSQL_PWD and a remote URL; then every object
under refs/tether, every commit message, the lock file, every file under
`.tether/` and `tether remote list` are searched for them.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from conftest import git, run_tether, write
from helpers import exp_refs, record_of, repo_state

TOKEN = "tok-9f8e7d6c5b4a"
DB_PASSWORD = "dbpw-31337-x"
MYSQL_PASSWORD = "mysql-pw-2718"
REMOTE_PASSWORD = "remote-pw-1618"
SIGNATURE = "sig-value-0577"
PLANTED = (TOKEN, DB_PASSWORD, MYSQL_PASSWORD, REMOTE_PASSWORD, SIGNATURE)

SECRET_ENV = {
    "MY_API_TOKEN": TOKEN,
    "DATABASE_URL": f"postgres://bob:{DB_PASSWORD}@db.example:5432/app",
    "MYSQL_PWD": MYSQL_PASSWORD,
}

SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.csv]
    outs: [work/prepared.csv]
  train:
    cmd: python train.py
    deps: [train.py, work/prepared.csv]
    params: [train.lr]
    outs: [models]
    metrics: [metrics.json]
"""

PREPARE = """\
import os, pathlib
print("connecting to", os.environ["DATABASE_URL"], flush=True)
rows = pathlib.Path("data/raw.csv").read_text().splitlines()
pathlib.Path("work").mkdir(exist_ok=True)
pathlib.Path("work/prepared.csv").write_text("\\n".join(rows[1:]) + "\\n")
"""

TRAIN = """\
import json, os, pathlib, sys, yaml
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
print("mysql password", os.environ["MYSQL_PWD"], "token", os.environ["MY_API_TOKEN"], flush=True)
if lr < 0:
    sys.exit("negative learning rate")
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.bin").write_bytes(b"weights")
json.dump({"acc": 0.5 + lr}, open("metrics.json", "w"))
import tether
tether.summary(run_by=os.environ["MY_API_TOKEN"])  # a careless script
"""

REPORT = """\
import os
print("reporting to", os.environ["DATABASE_URL"], "as", os.environ["MYSQL_PWD"], flush=True)
"""

BARE = """\
import sys
print("called with", sys.argv[1:], flush=True)
"""


def _project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1\n")
    write(repo / "prepare.py", PREPARE)
    write(repo / "train.py", TRAIN)
    write(repo / "bare.py", BARE)
    write(repo / "report.py", REPORT)
    write(repo / "settings.ini", "[db]\nhost = db.example\n")
    write(repo / ".gitignore", "data/\nwork/\nmodels/\n")
    write(repo / "data" / "raw.csv", "x,y\n1,2\n3,4\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    # Uncommitted work holding secrets: an untracked file and a modified tracked one.
    write(repo / "notes.md", f"debugging with token {TOKEN}\n")
    write(repo / "settings.ini", f"[db]\nhost = db.example\npassword = {MYSQL_PASSWORD}\n")
    return repo


def _tether(repo: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = run_tether(repo, *args, env=SECRET_ENV)
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc


def _found_in(data: bytes) -> list[str]:
    return [secret for secret in PLANTED if secret.encode() in data]


def _objects_under_tether_refs(repo: Path) -> bytes:
    """Every object reachable from refs/tether (blobs, trees, commits with messages)."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/tether/").split()
    listing = subprocess.run(["git", "rev-list", "--objects", *refs], cwd=repo,
                             capture_output=True, check=True).stdout
    ids = b"".join(line.split(b" ", 1)[0] + b"\n" for line in listing.splitlines())
    return subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=ids,
                          capture_output=True, check=True).stdout


def test_planted_secrets_are_found_nowhere(repo: Path) -> None:
    project = _project(repo)
    user_files = {p: (project / p).read_bytes() for p in ("notes.md", "settings.ini")}
    _tether(project, "run", "-n", "pipe", "-m", f"first try, token {TOKEN}")
    _tether(project, "run", "-n", "broken", "-S", "train.lr=-1", "-m", f"lr<0 {TOKEN}",
            code=1)
    _tether(project, "run", "-n", "bare", "-m", f"bare {TOKEN}", "--",
            "python", "bare.py", "--token", TOKEN, "--db", SECRET_ENV["DATABASE_URL"])
    shown = _tether(project, "show", "-A", "--json")  # builds .tether/index.db too
    assert not _found_in(shown.stdout.encode())
    before = repo_state(project)

    # Remotes: refused in the committed config, masked everywhere, kept only locally.
    url = f"https://bob:{REMOTE_PASSWORD}@store.example/tether"
    refused = _tether(project, "remote", "add", "store", url, code=2)
    assert "https://bob:***@store.example/tether" in refused.stderr
    refused_query = _tether(project, "remote", "add", "signed",
                            f"s3://bucket/x?secret={SIGNATURE}", code=2)
    assert "query parameter 'secret'" in refused_query.stderr
    added = _tether(project, "remote", "add", "--local", "store", url)
    listed = _tether(project, "remote", "list")
    assert "store\thttps://bob:***@store.example/tether" in listed.stdout
    for proc in (refused, refused_query, added, listed):
        assert not _found_in((proc.stdout + proc.stderr).encode())

    # The records are true, and say which files were stored redacted.
    records = {record_of(project, ref)["name"]: record_of(project, ref)
               for ref in exp_refs(project) if "/exps/" in ref}
    assert {name: r["status"] for name, r in records.items()} == {
        "pipe": "success", "broken": "failed", "bare": "success"}
    pipe = records["pipe"]
    assert pipe["redacted_files"] == {"notes.md": ["MY_API_TOKEN"],
                                      "settings.ini": ["MYSQL_PWD"]}
    assert pipe["message"] == "first try, token [redacted:MY_API_TOKEN]"
    assert pipe["metrics"]["run_by"] == "[redacted:MY_API_TOKEN]"
    assert "connecting to postgres://bob:[redacted:DATABASE_URL]@db.example:5432/app" in (
        pipe["stages"][0]["log"]["text"])
    ref = next(r for r in exp_refs(project) if r.endswith("/pipe"))
    assert git(project, "show", f"{ref}:notes.md") == "debugging with token [redacted:MY_API_TOKEN]"
    assert records["bare"]["argv"][-4:] == [
        "--token", "[redacted:MY_API_TOKEN]",
        "--db", "postgres://bob:[redacted:DATABASE_URL]@db.example:5432/app"]
    # The user's files keep their secrets: only what tether stores is redacted.
    assert {p: (project / p).read_bytes() for p in user_files} == user_files

    # The scan: objects under refs/tether, commit messages, lock file, .tether/, remote list.
    assert not _found_in(_objects_under_tether_refs(project))
    messages = git(project, "log", "--format=%B", "--glob=refs/tether/*")
    assert "[redacted:MY_API_TOKEN]" in messages
    assert not _found_in(messages.encode())
    assert not _found_in((project / "tether.lock").read_bytes())
    local_config = project / ".tether" / "config.local.yaml"
    scanned = 0
    for path in (project / ".tether").rglob("*"):
        if path.is_file() and path != local_config:
            assert not _found_in(path.read_bytes()), path
            scanned += 1
    assert scanned > 10
    # The one place a credential is kept on purpose: the local config, owner-only.
    assert REMOTE_PASSWORD in local_config.read_text()
    assert stat.S_IMODE(local_config.stat().st_mode) == 0o600
    log = project / ".tether" / "logs" / "tether.log"
    assert "store.example" in log.read_text()
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert repo_state(project) == before


def test_a_bare_command_with_a_secret_leaves_the_lock_alone(repo: Path) -> None:
    """A bare command always runs and writes no lock: its secret argument cannot reach
    the committed tether.lock; the record holds it redacted."""
    project = _project(repo)
    command = ("--", "python", "bare.py", "--token", TOKEN)
    _tether(project, "run", "-n", "first", *command)
    assert not (project / "tether.lock").exists()
    again = _tether(project, "run", "-n", "second", *command)
    assert "unchanged" not in again.stdout + again.stderr
    stored = _objects_under_tether_refs(project)
    assert TOKEN.encode() not in stored and b"[redacted:MY_API_TOKEN]" in stored


def test_configured_names_and_values_from(repo: Path) -> None:
    project = _project(repo)
    write(project / ".tether" / "config.yaml",
          "redact:\n  names: [WANDB_ENTITY]\n  values_from: [.env]\n")
    write(project / ".env", "SERVICE_LOGIN=login-4711-abc\n")
    write(project / ".gitignore", "data/\nwork/\nmodels/\n.env\n")
    write(project / "show.py", "import os\nprint(os.environ['WANDB_ENTITY'], 'login-4711-abc')\n")
    proc = run_tether(project, "run", "-n", "configured", "--", "python", "show.py",
                      env={"WANDB_ENTITY": "acme-research-team"})
    assert proc.returncode == 0, proc.stderr
    record = record_of(project, next(iter(exp_refs(project))))
    assert "[redacted:WANDB_ENTITY] [redacted:SERVICE_LOGIN]" in (
        record["stages"][0]["log"]["text"])
    stored = _objects_under_tether_refs(project)
    assert b"acme-research-team" not in stored and b"login-4711-abc" not in stored


def test_queued_run_stores_nothing_secret(repo: Path) -> None:
    project = _project(repo)
    # A queued run's worktree has no git-ignored data: a pipeline that needs none.
    write(project / "tether.yaml", "stages:\n  report:\n    cmd: python report.py\n")
    git(project, "add", "tether.yaml")
    git(project, "commit", "-q", "-m", "report only")
    _tether(project, "run", "--queue", "-n", "queued", "-m", f"queued {TOKEN}")
    snapshots = [r for r in exp_refs(project) if "/queue/" in r]
    assert len(snapshots) == 1
    assert git(project, "show", f"{snapshots[0]}:settings.ini").endswith(
        "password = [redacted:MYSQL_PWD]")
    _tether(project, "worker", "--exit-when-idle")
    (record,) = [record_of(project, r) for r in exp_refs(project) if "/exps/" in r]
    assert record["status"] == "success"
    assert record["message"] == "queued [redacted:MY_API_TOKEN]"
    assert "as [redacted:MYSQL_PWD]" in record["stages"][0]["log"]["text"]
    assert not _found_in(_objects_under_tether_refs(project))
    for path in (project / ".tether").rglob("*"):
        if path.is_file():
            assert not _found_in(path.read_bytes()), path
