"""Fixtures of the observability tests: a realistic queued project, workers, servers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import git, write
from queueing.conftest import (  # noqa: F401 - fixtures, and the way tests run tether
    rabbit_server,
    redis_server,
    tether,
    workers,
)
from queueing.servers import RedisServer

# Two stages, an output directory, git-ignored data; every line of stage output starts
# with "out:" so a test can tell it from tether's own lines.
PREPARE = """\
import os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
pathlib.Path("data").mkdir(exist_ok=True)
pathlib.Path("data/rows.txt").write_text("\\n".join(str(i) for i in range(p["rows"])))
print("out: prepared", p["rows"], "rows", flush=True)
"""
TRAIN = """\
import json, os, pathlib, sys, time, yaml
p = yaml.safe_load(open("params.yaml"))
print("out: training with lr", p["lr"], flush=True)
time.sleep(float(os.environ.get("TRAIN_SLEEP", "0")))
if p["lr"] < 0:
    print("out: a negative learning rate\\nout: gives up", flush=True)
    sys.exit(4)
pathlib.Path("model").mkdir(exist_ok=True)
pathlib.Path("model/weights.bin").write_bytes(b"w" * 64)
json.dump({"acc": 1 - p["lr"]}, open("metrics.json", "w"))
"""
SPEC = """\
stages:
  prepare:
    cmd: python prepare.py
    params: [rows]
    outs: [data]
  train:
    cmd: python train.py
    deps: [data]
    params: [lr]
    outs: [model]
    metrics: [metrics.json]
"""


@pytest.fixture
def pipeline_project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "rows: 5\nlr: 0.1\n")
    write(repo / "prepare.py", PREPARE)
    write(repo / "train.py", TRAIN)
    write(repo / ".gitignore", "data/\nmodel/\nmetrics.json\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


@pytest.fixture(params=["embedded", "celery-redis", "celery-rabbitmq"])
def backend_project(request: pytest.FixtureRequest, pipeline_project: Path) -> Path:
    """The pipeline project, its train stage retried once on exit 4, on each backend."""
    spec = (pipeline_project / "tether.yaml").read_text()
    write(pipeline_project / "tether.yaml",
          spec.replace("    metrics: [metrics.json]\n",
                       "    metrics: [metrics.json]\n    retries: 1\n    retry_on: [4]\n"))
    if request.param != "embedded":
        redis: RedisServer = request.getfixturevalue("redis_server")
        broker = (request.getfixturevalue("rabbit_server").url
                  if request.param == "celery-rabbitmq" else redis.url)
        write(pipeline_project / ".tether" / "config.yaml", yaml.safe_dump({"queue": {
            "backend": "celery", "broker": broker, "state": redis.url,
            "namespace": f"t{uuid.uuid4().hex[:10]}"}}))
    git(pipeline_project, "add", "-A")
    git(pipeline_project, "commit", "-q", "-m", f"{request.param} queue")
    return pipeline_project


def parse_logfmt(line: str) -> dict[str, Any]:
    """One logfmt line as key -> value; an AssertionError when it is not logfmt.

    Keys are bare words; values bare (no space, quote or =) or double-quoted with
    backslash escapes. Order is kept (dicts keep insertion order).
    """
    fields: dict[str, Any] = {}
    position, size = 0, len(line)
    while position < size:
        equals = line.find("=", position)
        assert equals > position, f"no key=value at {position}: {line!r}"
        key = line[position:equals]
        assert key.replace("_", "").replace(".", "").isalnum(), f"bad key {key!r}: {line!r}"
        position = equals + 1
        if position < size and line[position] == '"':
            value, position = _quoted(line, position + 1)
        else:
            end = line.find(" ", position)
            end = size if end < 0 else end
            value = line[position:end]
            assert '"' not in value and "=" not in value, f"bad bare value {value!r}: {line!r}"
            position = end
        assert key not in fields, f"key {key} twice: {line!r}"
        fields[key] = value
        if position < size:
            assert line[position] == " ", f"no space after {key}: {line!r}"
            position += 1
    return fields


def _quoted(line: str, position: int) -> tuple[str, int]:
    out = []
    while True:
        assert position < len(line), f"unterminated quote: {line!r}"
        char = line[position]
        if char == "\\":
            escaped = line[position + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(escaped, escaped))
            position += 2
        elif char == '"':
            return "".join(out), position + 1
        else:
            out.append(char)
            position += 1
