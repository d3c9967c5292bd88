"""Declared data sources (`data:` in the spec): fetched once from a loopback HTTP server,
pinned in tether.lock, reused, verified, resumed, detected when changed, and queued."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, record_of, tree_files
from tether.errors import EXIT_DATA_SOURCE, EXIT_MISSING_INPUT, EXIT_SPEC, EXIT_UNSAFE_PATH

BODY = b"".join(b"<row id='%d'>post %d</row>\n" % (i, i) for i in range(20000))


class DataServer:
    """An HTTP server on 127.0.0.1 serving one file, with ETag, HEAD and Range, that
    counts what it is asked and can cut the first body it sends in half."""

    def __init__(self) -> None:
        self.body, self.etag = BODY, '"v1"'
        self.gets: list[str | None] = []  # the Range header of each GET of the body
        self.heads = 0
        self.cut_next = False
        self.hold_next = False  # send half the body, then wait for `release`
        self.silent = False  # accept connections, answer nothing until `release`
        self.trickle = 0.0  # send the body in 50 pieces, this many seconds apart
        self.token: str | None = None  # when set: 401 without `Authorization: Bearer TOKEN`
        self.release = threading.Event()
        server = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _headers(self, status: int, length: int, extra: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.send_header("ETag", server.etag)
                self.send_header("Accept-Ranges", "bytes")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()

            def _refused(self) -> bool:
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                return False

            def do_HEAD(self) -> None:
                with server.lock:
                    server.heads += 1
                if server.silent:
                    server.release.wait(60)
                    return
                if not self._refused():
                    self._headers(200, len(server.body), {})

            def do_GET(self) -> None:
                if server.silent:
                    server.release.wait(60)
                    return
                if self._refused():
                    return
                body, wanted = server.body, self.headers.get("Range")
                with server.lock:
                    server.gets.append(wanted)
                    cut, server.cut_next = server.cut_next, False
                    hold, server.hold_next = server.hold_next, False
                start = int(wanted.split("=")[1].split("-")[0]) if wanted else 0
                part = body[start:]
                extra = ({"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                         if wanted else {})
                self._headers(206 if wanted else 200, len(part), extra)
                if cut or hold:  # the connection drops half-way through
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    if hold:
                        server.release.wait(60)
                    self.close_connection = True
                    return
                if server.trickle:
                    piece = len(part) // 50 + 1
                    for at in range(0, len(part), piece):
                        self.wfile.write(part[at:at + piece])
                        self.wfile.flush()
                        time.sleep(server.trickle)
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/posts.xml"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[DataServer]:
    found = DataServer()
    yield found
    found.close()


SPEC = """\
data:
  posts:
    source: {url}
    path: data/posts.xml
stages:
  count:
    cmd: python count.py
    deps: [data/posts.xml]
    metrics: [metrics.json]
"""


COUNT = """\
import json
rows = open("data/posts.xml").read().count("<row")
json.dump({"rows": rows}, open("metrics.json", "w"))
"""
PREPARE = """\
import json, os
rows = json.loads(os.environ["TETHER_DATA_SUBSET"])["rows"]
lines = open(os.environ["TETHER_DATA_RAW"]).readlines()[:rows]
open(os.environ["TETHER_DATA_OUT"], "w").writelines(lines)
if os.environ.get("PREPARE_LOG"):
    open(os.environ["PREPARE_LOG"], "a").write(f"{rows}\\n")
"""


def project(repo: Path, url: str, spec: str = SPEC) -> Path:
    write(repo / "count.py", COUNT)
    write(repo / "subset.py", PREPARE)
    write(repo / "tether.yaml", spec.format(url=url))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


def records(root: Path) -> list[dict[str, Any]]:
    found = [record_of(root, ref) for ref in exp_refs(root) if ref.startswith("refs/tether/exps/")]
    return sorted(found, key=lambda r: r["created_at"])


def ok(root: Path, *args: str) -> str:
    proc = run_tether(root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_fetched_once_pinned_and_reused(repo: Path, server: DataServer) -> None:
    root = project(repo, server.url)
    out = ok(root, "run", "-n", "first")
    assert "posts: fetched and pinned" in out
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    pin = json.loads((root / "tether.lock").read_text())["data"]["posts"]
    assert pin["source"] == server.url and pin["etag"] == '"v1"' and pin["size"] == len(BODY)
    assert pin["key"].startswith("b3:")
    # the data is git-ignored; the lock is what gets committed
    assert git(root, "check-ignore", "data/posts.xml") == "data/posts.xml"
    assert records(root)[0]["metrics"]["rows"] == 20000
    exp = next(ref for ref in exp_refs(root) if ref.startswith("refs/tether/exps/"))
    assert "data/posts.xml" not in tree_files(root, exp)  # the bytes stay out of git
    assert "tether.lock" in tree_files(root, exp)  # the pin goes with the experiment
    assert git(root, "status", "--porcelain", "-uall", "--", "data") == "?? data/.gitignore"
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pin")
    ok(root, "run", "-n", "second")  # same source, unchanged: no request at all
    (root / "data" / "posts.xml").unlink()  # gone from the work tree: from the cache
    out = ok(root, "run", "-n", "third", "--force")
    assert "restored from the cache" in out
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    assert server.gets == [None]  # exactly one GET of the body, ever
    assert server.heads == 1  # and one HEAD, the first time (its identity for the pin)


def test_a_changed_source_is_detected_and_accepted_by_update(
    repo: Path, server: DataServer,
) -> None:
    root = project(repo, server.url)
    ok(root, "run")
    assert "pinned, source unchanged (in the cache)" in ok(root, "status")
    server.body, server.etag = BODY + b"<row id='new'/>\n", '"v2"'
    status = ok(root, "status")
    assert 'posts: source changed since pinned (ETag "v1" -> "v2")' in status
    assert "tether data update posts" in status
    ok(root, "run")  # a run keeps the pinned bytes, without asking the source
    assert (root / "data" / "posts.xml").read_bytes() == BODY and len(server.gets) == 1
    out = ok(root, "data", "update", "posts")
    assert "posts: fetched and pinned" in out
    assert (root / "data" / "posts.xml").read_bytes() == server.body
    assert json.loads((root / "tether.lock").read_text())["data"]["posts"]["etag"] == '"v2"'
    assert "run   count: dependency data/posts.xml changed" in ok(root, "status")
    assert "unchanged" in ok(root, "data", "update")  # nothing new: nothing fetched
    assert len(server.gets) == 2


def test_bytes_that_differ_from_the_pin_are_refused(
    repo: Path, server: DataServer, tmp_path: Path,
) -> None:
    root = project(repo, server.url)
    ok(root, "data", "fetch")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pin")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    server.body = BODY.replace(b"post 7", b"p0st 7")  # same size and ETag, other bytes
    proc = run_tether(clone, "run")
    assert proc.returncode == EXIT_DATA_SOURCE, proc.stderr
    assert "tether.lock pins" in proc.stderr and "tether data update posts" in proc.stderr
    assert not (clone / "data" / "posts.xml").exists()
    objects = clone / ".tether" / "cache" / "objects"
    assert [p.name for p in (objects / "tmp").iterdir()] == []  # no partial left
    assert not (objects / "b3").exists()  # nothing stored under any key
    server.body = BODY  # the pinned bytes again: the clone gets exactly those
    ok(clone, "run")
    assert (clone / "data" / "posts.xml").read_bytes() == BODY


def test_an_interrupted_download_resumes_with_a_range_request(
    repo: Path, server: DataServer,
) -> None:
    root = project(repo, server.url)
    server.hold_next = True
    first = subprocess.Popen([sys.executable, "-m", "tether", "data", "fetch"], cwd=root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = root / ".tether" / "cache" / "objects" / "tmp"
    try:
        for _ in range(600):  # until half the body is on disk (at most a minute)
            parts = list(tmp.glob("*.part")) if tmp.is_dir() else []
            if parts and parts[0].stat().st_size == len(BODY) // 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the first download never wrote half the body")
    finally:
        first.kill()  # killed mid-download, as a worker or a Ctrl-C would leave it
        first.wait()
        server.release.set()
    assert not (root / "data" / "posts.xml").exists()
    ok(root, "data", "fetch", "posts")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    assert server.gets == [None, f"bytes={len(BODY) // 2}-"]  # the rest, not all again
    assert list(tmp.glob("*.part")) == []


def test_a_dropped_connection_is_retried_in_the_same_fetch(
    repo: Path, server: DataServer,
) -> None:
    root = project(repo, server.url)
    server.cut_next = True
    ok(root, "data", "fetch", "posts")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    assert len(server.gets) == 2


def test_a_silent_server_times_out_instead_of_hanging(
    repo: Path, server: DataServer,
) -> None:
    root = project(repo, server.url)
    ok(root, "data", "fetch")
    write(root / ".tether" / "config.yaml", "sources:\n  posts: {timeout: 1s}\n")
    server.silent = True  # the process is alive (connections are accepted) but stuck
    status = run_tether(root, "status", timeout=60)  # used to wait for minutes
    assert status.returncode == 0, status.stderr
    assert "posts: pinned; cannot check the source" in status.stdout
    assert "cannot be reached: no answer within the timeout" in status.stdout
    (root / "data" / "posts.xml").unlink()
    (root / "tether.lock").unlink()
    shutil.rmtree(root / ".tether" / "cache")
    fetch = run_tether(root, "data", "fetch", timeout=60)
    assert fetch.returncode == EXIT_DATA_SOURCE, fetch.stderr
    assert "cannot be reached: no answer within the timeout" in fetch.stderr
    assert "timeout: 5m" in fetch.stderr  # the hint says how to give it more time
    assert not (root / "data" / "posts.xml").exists()


def test_a_download_longer_than_the_timeout_is_not_cut(
    repo: Path, server: DataServer,
) -> None:
    # The timeout is for silence, not for the whole download: a large file on a slow
    # link takes as long as it takes (aiohttp's default cut every one after 5 minutes).
    root = project(repo, server.url)
    write(root / ".tether" / "config.yaml", "sources:\n  posts: {timeout: 2}\n")
    server.trickle = 0.06  # about 3 s in all, never more than 0.06 s without a byte
    ok(root, "data", "fetch")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    assert server.gets == [None]  # in one piece, not resumed after a cut


def test_a_server_that_is_down_is_unreachable_not_missing(
    repo: Path, server: DataServer,
) -> None:
    root = project(repo, server.url)
    server.close()
    proc = run_tether(root, "data", "fetch")
    assert proc.returncode == EXIT_DATA_SOURCE, proc.stderr
    assert "cannot be reached" in proc.stderr and "does not exist" not in proc.stderr


def test_a_bad_timeout_option_is_a_clear_error(repo: Path, server: DataServer) -> None:
    root = project(repo, server.url)
    write(root / ".tether" / "config.yaml", "sources:\n  posts: {timeout: soon}\n")
    proc = run_tether(root, "data", "fetch")
    assert proc.returncode == EXIT_DATA_SOURCE, proc.stderr
    assert "option timeout" in proc.stderr and "soon" in proc.stderr
    assert server.heads == 0 and not (root / "tether.lock").exists()


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_local_path_source(repo: Path, tmp_path: Path, as_url: bool) -> None:
    nas = write(tmp_path / "nas" / "posts.xml", BODY.decode())
    root = project(repo, nas.as_uri() if as_url else str(nas))
    ok(root, "run")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    pin = json.loads((root / "tether.lock").read_text())["data"]["posts"]
    assert pin["size"] == len(BODY) and pin["mtime"]
    nas.write_text("changed\n")
    assert "source changed since pinned (size" in ok(root, "status")


def test_a_subset_is_prepared_once_per_source_and_values(
    repo: Path, server: DataServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREPARE_LOG", str(tmp_path / "prepared.log"))
    spec = SPEC.replace("    path: data/posts.xml\n", (
        "    path: data/posts.xml\n"
        "    subset: {{rows: 100}}\n"
        "    prepare: python subset.py\n"))
    root = project(repo, server.url, spec)
    out = ok(root, "run")
    assert "fetched and pinned, prepared" in out
    assert records(root)[0]["metrics"]["rows"] == 100
    pin = json.loads((root / "tether.lock").read_text())["data"]["posts"]
    assert pin["subset"] == {"rows": 100} and pin["prepared"].startswith("b3:")
    write(root / "tether.yaml", spec.format(url=server.url).replace("rows: 100", "rows: 50"))
    ok(root, "run")
    assert records(root)[1]["metrics"]["rows"] == 50
    write(root / "tether.yaml", spec.format(url=server.url))  # back to the first subset
    ok(root, "run")
    assert records(root)[2]["metrics"]["rows"] == 100
    assert len(server.gets) == 1  # one download for all three
    ok(root, "run", "--force")  # another experiment on the same source and subset
    assert records(root)[3]["metrics"]["rows"] == 100
    assert (tmp_path / "prepared.log").read_text() == "100\n50\n"  # each subset made once


def test_a_queued_run_gets_the_pinned_bytes(repo: Path, server: DataServer) -> None:
    root = project(repo, server.url)
    proc = run_tether(root, "run", "--queue")
    assert proc.returncode == EXIT_MISSING_INPUT, proc.stderr
    assert "tether data fetch posts" in proc.stderr
    ok(root, "data", "fetch")
    ok(root, "run", "--queue")
    ok(root, "worker", "--exit-when-idle")
    assert [r["status"] for r in records(root)] == ["success"]
    assert records(root)[0]["metrics"]["rows"] == 20000
    assert server.gets == [None]  # the worker took the bytes from the repository cache


@pytest.mark.parametrize("path", ["../outside.xml", ".git/hooks/post-checkout",
                                  ".tether/cache/x", "data/../../x"])
def test_a_hostile_path_is_refused(repo: Path, server: DataServer, path: str) -> None:
    root = project(repo, server.url, SPEC.replace("path: data/posts.xml", f"path: {path}"))
    proc = run_tether(root, "run")
    assert proc.returncode == EXIT_SPEC, proc.stderr
    assert "tether.yaml:4: data.posts.path" in proc.stderr
    assert server.gets == [] and server.heads == 0


def test_a_credential_in_the_url_is_refused(repo: Path, server: DataServer) -> None:
    root = project(repo, server.url + "?token=s3cr3t")
    proc = run_tether(root, "status")
    assert proc.returncode == EXIT_SPEC and "s3cr3t" not in proc.stderr
    assert "config.local.yaml" in proc.stderr


def test_pinned_bytes_travel_through_the_artifact_remote(
    repo: Path, server: DataServer, tmp_path: Path,
) -> None:
    root = project(repo, server.url)
    ok(root, "remote", "add", "store", str(tmp_path / "store"), "--default")
    ok(root, "run", "-n", "here")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pin")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    ok(root, "push")  # the pinned source goes with the experiment
    ok(root, "gc")  # kept: tether.lock pins it
    key = json.loads((root / "tether.lock").read_text())["data"]["posts"]["key"][3:]
    assert (root / ".tether" / "cache" / "objects" / "b3" / key[:2] / key[2:]).is_file()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    out = ok(clone, "run", "-n", "there")
    assert "posts: restored from the cache" in out  # pulled from the store, by its key
    assert (clone / "data" / "posts.xml").read_bytes() == BODY
    (clone / "data" / "posts.xml").unlink()
    ok(clone, "checkout")  # checkout puts pinned sources in place too
    assert (clone / "data" / "posts.xml").read_bytes() == BODY
    assert server.gets == [None]  # the source was read once, by the first machine


def test_a_hostile_pin_is_refused(repo: Path, server: DataServer, tmp_path: Path) -> None:
    root = project(repo, server.url)
    lock = {"version": 1, "stages": {}, "data": {"posts": {
        "source": server.url, "path": "../../escaped", "key": "b3:" + "0" * 64}}}
    write(root / "tether.lock", json.dumps(lock))
    proc = run_tether(root, "checkout")
    assert proc.returncode == EXIT_UNSAFE_PATH, proc.stderr
    assert not (tmp_path / "escaped").exists()


def test_dvc_import_url_becomes_a_declared_source(repo: Path, server: DataServer) -> None:
    write(repo / ".dvc" / "config", "")
    write(repo / "count.py", COUNT)
    write(repo / "dvc.yaml", "stages:\n  count:\n    cmd: python count.py\n"
          "    deps: [data/posts.xml]\n    metrics: [metrics.json]\n")
    write(repo / "data" / "posts.xml.dvc", (
        "md5: 0c6b2a1e1f9a5e3b7f1c2d3e4f5a6b7c\nfrozen: true\ndeps:\n"
        f"- etag: '\"v1\"'\n  size: {len(BODY)}\n  path: {server.url}\n"
        "outs:\n- md5: 9e107d9d372bb6826bd81d3542a419d6\n  size: 1\n  hash: md5\n"
        "  path: posts.xml\n"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a DVC project with an import-url")
    out = ok(repo, "init", "--from-dvc")
    assert f"declared data source posts.xml ({server.url} -> data/posts.xml)" in out
    assert not (repo / "data" / "posts.xml.tether").exists()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tether")
    ok(repo, "run")
    assert records(repo)[0]["metrics"]["rows"] == 20000
    assert server.gets == [None]


def test_the_dsl_declares_the_same_sources_as_yaml(tmp_path: Path) -> None:
    from tether.spec import load_pipeline

    yaml_root, py_root = tmp_path / "yaml", tmp_path / "py"
    write(yaml_root / "tether.yaml", (
        "data:\n  posts:\n    source: s3://bucket/posts.xml\n    path: data/posts.xml\n"
        "    subset: {rows: 10}\n    prepare: python subset.py\n"
        "stages:\n  count:\n    cmd: python count.py\n    deps: [data/posts.xml]\n"))
    write(py_root / "tetherfile.py", (
        "from tether.dsl import Pipeline, stage\n"
        "pipeline = Pipeline()\n"
        "pipeline.data('posts', 's3://bucket/posts.xml', 'data/posts.xml',\n"
        "              subset={'rows': 10}, prepare='python subset.py')\n"
        "pipeline.add(stage('count', cmd='python count.py', deps=['data/posts.xml']))\n"))
    assert load_pipeline(py_root).to_json() == load_pipeline(yaml_root).to_json()
    assert load_pipeline(py_root).to_json()["data"]["posts"]["subset"] == {"rows": 10}


def test_credentials_come_from_the_local_config_and_are_never_stored(
    repo: Path, server: DataServer,
) -> None:
    server.token = "s3cr3t-t0ken"
    root = project(repo, server.url)
    proc = run_tether(root, "run")
    assert proc.returncode == EXIT_DATA_SOURCE and "refused access" in proc.stderr
    write(root / ".tether" / "config.local.yaml",
          "sources:\n  posts:\n    headers: {Authorization: Bearer s3cr3t-t0ken}\n")
    ok(root, "run")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    assert "s3cr3t" not in (root / "tether.lock").read_text()
    exp = next(ref for ref in exp_refs(root) if ref.startswith("refs/tether/exps/"))
    assert "s3cr3t" not in git(root, "log", "-p", exp)
    assert "pinned, source unchanged" in ok(root, "status")
    # a queue worker's worktree has no local config: it uses this machine's
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pin")
    key = json.loads((root / "tether.lock").read_text())["data"]["posts"]["key"][3:]
    (root / ".tether" / "cache" / "objects" / "b3" / key[:2] / key[2:]).unlink()
    ok(root, "run", "--queue", "--force")
    ok(root, "worker", "--exit-when-idle")
    assert [r["status"] for r in records(root)] == ["success", "success"]
    assert len(server.gets) == 2  # the worker fetched the pinned bytes again, with the token
