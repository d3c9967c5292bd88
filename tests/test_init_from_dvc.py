"""`tether init --from-dvc` on a DVC 3 project laid out as DVC leaves it (written here)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import git, run_tether, write
from tether.errors import EXIT_USAGE
from tether.migrate.dvc_yaml import convert

DVC_YAML = """\
vars:
  - sizes: [small, large]
stages:
  prepare:
    desc: split the raw data
    cmd: python src/prepare.py --seed ${prepare.seed}
    deps:
      - src/prepare.py
      - data/raw.csv
      - data/images
    params:
      - prepare.split
    outs:
      - data/prepared
  train:
    foreach: ${sizes}
    do:
      cmd: python src/train.py ${item}
      deps:
        - src/train.py
        - data/prepared
      params:
        - train.lr
      outs:
        - models/${item}.txt
        - logs/${item}.log:
            cache: false
      metrics:
        - metrics/${item}.json:
            cache: false
  evaluate:
    wdir: eval
    cmd: python evaluate.py
    deps:
      - evaluate.py
      - ../models
    params:
      - ../params.yaml:
          - evaluate
    metrics:
      - scores.json:
          cache: false
    plots:
      - confusion.csv:
          template: confusion
          x: actual
          y: predicted
          cache: false
plots:
  - ROC:
      template: simple
      x: fpr
      y:
        eval/roc.json: tpr
"""

PARAMS = "prepare:\n  seed: 7\n  split: 0.25\ntrain:\n  lr: 0.1\nevaluate:\n  threshold: 0.5\n"

PREPARE = """\
import os, sys
os.makedirs("data/prepared", exist_ok=True)
rows = open("data/raw.csv").read().splitlines()[1:]
images = sorted(os.listdir("data/images"))
open("data/prepared/rows.txt", "w").write(f"{len(rows)} rows, {len(images)} images, {sys.argv}\\n")
"""

TRAIN = """\
import json, os, sys
import yaml
size = sys.argv[1]
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
os.makedirs("models", exist_ok=True); os.makedirs("metrics", exist_ok=True)
os.makedirs("logs", exist_ok=True)
open(f"models/{size}.txt", "w").write(f"{size} model lr={lr}\\n")
open(f"logs/{size}.log", "w").write("trained\\n")
json.dump({"loss": lr * (2 if size == "small" else 1)}, open(f"metrics/{size}.json", "w"))
"""

EVALUATE = """\
import json, os
models = sorted(os.listdir("../models"))
json.dump({"acc": 0.5 + 0.1 * len(models)}, open("scores.json", "w"))
open("confusion.csv", "w").write("actual,predicted\\ncat,cat\\ncat,dog\\ndog,dog\\n")
json.dump({"roc": [{"fpr": 0, "tpr": 0}, {"fpr": 0.5, "tpr": 0.8}, {"fpr": 1, "tpr": 1}]},
          open("roc.json", "w"))
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cache_object(root: Path, data: bytes, *, dvc3: bool = True) -> str:
    digest = md5(data)
    base = root / ".dvc" / "cache" / ("files/md5" if dvc3 else "")
    write(base / digest[:2] / digest[2:], "")
    (base / digest[:2] / digest[2:]).write_bytes(data)
    return digest


def dvc_project(root: Path) -> dict[str, bytes]:
    """A DVC 3 project after `dvc add` and `git commit`, the way `dvc init` leaves it."""
    write(root / ".dvc" / ".gitignore", "/config.local\n/tmp\n/cache\n")
    write(root / ".dvc" / "config", "[core]\n    autostage = true\n")
    write(root / ".dvcignore", "# Add patterns of files dvc should ignore\n")
    write(root / "dvc.yaml", DVC_YAML)
    write(root / "params.yaml", PARAMS)
    write(root / "src" / "prepare.py", PREPARE)
    write(root / "src" / "train.py", TRAIN)
    write(root / "eval" / "evaluate.py", EVALUATE)
    write(root / ".gitignore", "/models\n/logs\n/metrics\n")
    write(root / "data" / ".gitignore", "/raw.csv\n/images\n/prepared\n/extra.bin\n")
    # data/raw.csv: only in the DVC cache (DVC 3 layout), as after `dvc gc -w` / a fresh clone
    raw = b"x,y\n1,2\n3,4\n"
    write(root / "data" / "raw.csv.dvc",
          f"outs:\n- md5: {cache_object(root, raw)}\n  size: {len(raw)}\n  hash: md5\n"
          "  path: raw.csv\n")
    # data/images: a folder in the work tree, its .dir listing in a DVC 2 cache
    images = {"a.png": b"\x89PNG a", "sub/b.png": b"\x89PNG b"}
    for rel, data in images.items():
        (root / "data" / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / "images" / rel).write_bytes(data)
    listing = [{"md5": md5(data), "relpath": rel} for rel, data in sorted(images.items())]
    dir_md5 = cache_object(root, json.dumps(listing).encode(), dvc3=False) + ".dir"
    dir_object = root / ".dvc" / "cache" / dir_md5[:2] / dir_md5[2:-4]
    dir_object.rename(dir_object.with_name(dir_object.name + ".dir"))
    write(root / "data" / "images.dvc",
          f"outs:\n- md5: {dir_md5}\n  size: 12\n  nfiles: 2\n  path: images\n")
    # data/extra.bin: neither here nor in the cache (it lives on the DVC remote)
    write(root / "data" / "extra.bin.dvc",
          "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 3\n  hash: md5\n"
          "  path: extra.bin\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a DVC project")
    return {"data/raw.csv": raw, **{f"data/images/{k}": v for k, v in images.items()}}


def plan(root: Path) -> list[tuple[str, str]]:
    proc = run_tether(root, "status")
    assert proc.returncode == 0, proc.stderr
    return re.findall(r"^\s+(run|skip|restore)\s+(\S+):", proc.stdout, re.M)


def test_init_from_dvc_converts_pipeline_and_data(repo: Path) -> None:
    files = dvc_project(repo)
    head = git(repo, "rev-parse", "HEAD")
    proc = run_tether(repo, "init", "--from-dvc")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the pointer whose data is nowhere is listed with the command that fetches it
    assert "dvc pull data/extra.bin.dvc" in out
    assert "tracked data/raw.csv (from the DVC cache) -> data/raw.csv.tether" in out
    assert "tracked data/images -> data/images.tether" in out
    for rel, data in files.items():
        assert (repo / rel).read_bytes() == data
    assert not (repo / "data" / "extra.bin.tether").exists()
    spec = (repo / "tether.yaml").read_text()
    assert "# dvc: outs logs/${item}.log: `cache: false` has no equivalent" in spec
    assert "template: confusion" in spec
    compiled = run_tether(repo, "spec", "--json")
    assert compiled.returncode == 0, compiled.stderr
    stages = json.loads(compiled.stdout)["stages"]
    assert stages["prepare"]["params"] == [
        {"file": "params.yaml", "key": "prepare.split"},
        {"file": "params.yaml", "key": "prepare.seed"}]  # used in cmd: tracked, as DVC does
    assert stages["prepare"]["cmd"] == ["python src/prepare.py --seed 7"]
    assert stages["train@large"]["outs"] == ["models/large.txt", "logs/large.log"]
    assert stages["evaluate"]["wdir"] == "eval"
    assert stages["evaluate"]["deps"] == ["eval/evaluate.py", "models"]
    assert stages["evaluate"]["params"] == [{"file": "params.yaml", "key": "evaluate"}]
    assert stages["evaluate"]["plots"] == ["eval/confusion.csv", "eval/roc.json"]
    assert stages["evaluate"]["metrics"] == ["eval/scores.json"]
    # what `dvc status` says of a project never reproduced: every stage, in DAG order
    assert plan(repo) == [("run", "prepare"), ("run", "train@small"), ("run", "train@large"),
                          ("run", "evaluate")]
    # a refusal leaves the converted spec alone
    again = run_tether(repo, "init", "--from-dvc")
    assert again.returncode == EXIT_USAGE and "--force" in again.stderr
    assert (repo / "tether.yaml").read_text() == spec
    assert git(repo, "rev-parse", "HEAD") == head
    # the converted pipeline runs, and plans what DVC would plan after a param change
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tether")
    run = run_tether(repo, "run", "-n", "converted")
    assert run.returncode == 0, run.stderr + run.stdout
    assert all(action == "skip" for action, _ in plan(repo))
    # its plots files, converted from DVC's templates, are drawn from the experiment
    plots = run_tether(repo, "plots", "converted", "--svg", "--out", "plots")
    assert plots.returncode == 0, plots.stderr
    drawn = {p.name for p in (repo / "plots").glob("*.svg")}
    assert {"confusion-matrix-eval-confusion.csv.svg", "ROC-eval-roc.json.svg"} <= drawn
    (repo / "params.yaml").write_text(PARAMS.replace("lr: 0.1", "lr: 0.2"))
    assert plan(repo) == [("skip", "prepare"), ("run", "train@small"), ("run", "train@large"),
                          ("run", "evaluate")]
    (repo / "params.yaml").write_text(PARAMS.replace("seed: 7", "seed: 8"))
    assert [a for a, _ in plan(repo)] == ["run"] * 4
    # the data travels as tether data: gone from the work tree, `tether checkout` restores it
    (repo / "data" / "raw.csv").unlink()
    assert run_tether(repo, "checkout").returncode == 0
    assert (repo / "data" / "raw.csv").read_bytes() == files["data/raw.csv"]


def test_force_converts_again_after_dvc_pull(repo: Path) -> None:
    dvc_project(repo)
    assert run_tether(repo, "init", "--from-dvc").returncode == 0
    write(repo / "data" / "extra.bin", "")
    (repo / "data" / "extra.bin").write_bytes(b"abc")  # as `dvc pull` would leave it...
    proc = run_tether(repo, "init", "--from-dvc", "--force")
    assert proc.returncode == 0, proc.stderr
    # ...but its bytes do not match the pointer: reported, not tracked
    assert "data/extra.bin: differs from data/extra.bin.dvc" in proc.stdout
    assert not (repo / "data" / "extra.bin.tether").exists()
    digest = md5(b"abc")
    (repo / "data" / "extra.bin.dvc").write_text(
        f"outs:\n- md5: {digest}\n  size: 3\n  hash: md5\n  path: extra.bin\n")
    proc = run_tether(repo, "init", "--from-dvc", "--force")
    assert "tracked data/extra.bin -> data/extra.bin.tether" in proc.stdout


def test_a_corrupt_dvc_cache_object_is_not_restored(repo: Path) -> None:
    dvc_project(repo)
    digest = md5(b"x,y\n1,2\n3,4\n")
    obj = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    obj.write_bytes(b"tampered")
    proc = run_tether(repo, "init", "--from-dvc")
    assert proc.returncode == 0, proc.stderr
    assert "dvc pull data/raw.csv.dvc" in proc.stdout
    assert not (repo / "data" / "raw.csv").exists()


def test_a_dvc_pointer_leading_outside_is_refused(repo: Path) -> None:
    write(repo / "dvc.yaml", "stages: {}\n")
    write(repo / "evil.dvc", "outs:\n- md5: 0123456789abcdef0123456789abcdef\n"
          "  path: ../outside.txt\n")
    proc = run_tether(repo, "init", "--from-dvc")
    assert proc.returncode == 11, proc.stderr


def read_none(rel: str) -> None:
    return None


def test_matrix_vars_and_top_level_metrics() -> None:
    text = """\
vars:
  - lrs: [0.1, 0.01]
stages:
  train:
    matrix:
      model: [cnn, mlp]
      lr: ${lrs}
    cmd: python train.py ${item.model} ${item.lr} ${missing.value}
    outs: [dvclive]
    always_changed: true
metrics:
  - dvclive/metrics.json
plots:
  - dvclive/plots/metrics:
      x: step
"""
    result = convert(text, read_none)
    spec = yaml.safe_load(result.text)
    body = spec["stages"]["train"]
    assert body["matrix"] == {"model": ["cnn", "mlp"], "lr": [0.1, 0.01]}
    assert body["cmd"] == "python train.py ${item.model} ${item.lr} ${missing.value}"
    assert body["metrics"] == ["dvclive/metrics.json"]  # inside the stage's output
    assert any("${missing.value} is not defined" in n for n in result.notes)
    assert any("always_changed" in n for n in result.notes)
    assert any("reads dvclive folders" in n for n in result.notes)


@pytest.mark.parametrize("text", ["stages: [a, b]\n", "{not yaml", "plain text\n"])
def test_a_broken_dvc_yaml_is_a_spec_error(text: str) -> None:
    from tether.errors import SpecError

    with pytest.raises(SpecError, match=r"dvc\.yaml"):
        convert(text, read_none)


def test_data_git_tracks_already_is_reported_and_the_rest_converts(repo: Path) -> None:
    files = dvc_project(repo)
    notes = b"some notes\n"
    write(repo / "notes.txt", notes.decode())
    write(repo / "notes.txt.dvc", f"outs:\n- md5: {md5(notes)}\n  size: 11\n  path: notes.txt\n")
    git(repo, "add", "notes.txt", "notes.txt.dvc")
    git(repo, "commit", "-q", "-m", "notes in git, by mistake")
    proc = run_tether(repo, "init", "--from-dvc")
    assert proc.returncode == 0, proc.stderr
    assert "not converted: cannot track 'notes.txt': git tracks it already" in proc.stdout
    assert (repo / "data" / "raw.csv").read_bytes() == files["data/raw.csv"]
    assert (repo / "data" / "raw.csv.tether").exists()
