"""Bad input gets a clear error, a distinct exit code, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, run_tether, write
from helpers import exp_refs, repo_state

SPEC = """\
stages:
  train:
    cmd: python -c "print(1)"
    deps: [train.py]
    params: [train.lr]
    metrics: [metrics.json]
"""


def snapshot(root: Path) -> dict[str, object]:
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts and ".tether" not in p.parts
    }
    return {"refs": exp_refs(root), "state": repo_state(root), "files": files}


@pytest.fixture
def project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1  # learning rate\n")
    write(repo / "train.py", "print('train')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    return repo


def test_outside_git_repository(tmp_path: Path) -> None:
    proc = run_tether(tmp_path, "run", "--", "true")
    assert proc.returncode == 4
    assert "not inside a git repository" in proc.stderr and "git init" in proc.stderr
    proc = run_tether(tmp_path, "init")
    assert proc.returncode == 4
    assert not (tmp_path / "tether.yaml").exists()


def test_repository_without_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    proc = run_tether(tmp_path, "run", "--", "true")
    assert proc.returncode == 4 and "no commit yet" in proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-S", "train.lrr=0.2"], "params.yaml has no key 'train.lrr' (did you mean 'train.lr'?)"),
        (["-S", "train.lr"], "expected KEY=VALUE"),
        (["-S", "train.lr=[1,"], "is not valid YAML"),
        (["nope"], "nope"),
    ],
)
def test_bad_run_arguments_change_nothing(project: Path, args: list[str], expected: str) -> None:
    before = snapshot(project)
    proc = run_tether(project, "run", *args)
    assert proc.returncode == 3, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(project) == before


def test_new_key_needs_plus(project: Path) -> None:
    proc = run_tether(project, "run", "--dry", "-S", "+train.momentum=0.9")
    assert proc.returncode == 0, proc.stderr
    # a dry run writes nothing, not even the new key
    assert "momentum" not in (project / "params.yaml").read_text()


def test_invalid_spec_names_file_and_line(project: Path) -> None:
    write(project / "tether.yaml", SPEC.replace("deps:", "depz:"))
    before = snapshot(project)
    proc = run_tether(project, "run")
    assert proc.returncode == 3
    expected = "tether.yaml:4: stages.train.depz: unknown key 'depz'; did you mean 'deps'?"
    assert expected in proc.stderr
    assert snapshot(project) == before


def test_missing_dependency(project: Path) -> None:
    (project / "train.py").unlink()
    before = snapshot(project)
    proc = run_tether(project, "run")
    assert proc.returncode == 3
    assert "depends on train.py, which does not exist" in proc.stderr
    assert snapshot(project) == before


def test_missing_param_key(project: Path) -> None:
    write(project / "params.yaml", "train:\n  momentum: 1\n")
    proc = run_tether(project, "run")
    assert proc.returncode == 3
    assert "declares param 'train.lr', but params.yaml has no such key" in proc.stderr


def test_bad_duration_option(project: Path) -> None:
    proc = run_tether(project, "run", "--timeout", "soon", "--", "true")
    assert proc.returncode == 2 and "--timeout 'soon'" in proc.stderr
    proc = run_tether(project, "run", "--timeout", "5s")
    assert proc.returncode == 2 and "apply to `-- COMMAND` only" in proc.stderr


def test_unknown_option_is_usage_error(project: Path) -> None:
    proc = run_tether(project, "run", "--frobnicate")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_traceback_only_with_verbose(project: Path) -> None:
    write(project / "tether.yaml", "stages: [\n")
    proc = run_tether(project, "run")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "tether.yaml:" in proc.stderr
    log = project / ".tether" / "logs" / "tether.log"
    assert "Traceback" in log.read_text()
    proc = run_tether(project, "-v", "run")
    assert "Traceback" in proc.stderr


def test_init_writes_template_and_refuses_overwrite(repo: Path) -> None:
    proc = run_tether(repo, "init")
    assert proc.returncode == 0, proc.stderr
    text = (repo / "tether.yaml").read_text()
    assert text.startswith("#") and "stall_timeout" in text
    assert (repo / ".tether" / ".gitignore").exists()
    assert (repo / ".tether" / "config.yaml").exists()
    # The template is a valid spec.
    assert run_tether(repo, "spec").returncode == 0
    # Local state is ignored; the committed config is not.
    (repo / ".tether" / "runs").mkdir()
    write(repo / ".tether" / "runs" / "x.log", "x")
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert ".tether/runs" not in status and ".tether/config.yaml" in status
    proc = run_tether(repo, "init")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (repo / "tether.yaml").read_text() == text


def test_a_reader_that_goes_away_is_not_an_internal_error(repo: Path) -> None:
    """`tether spec --json | head`: the closed pipe ends the command quietly (141)."""
    import subprocess
    import sys

    items = ", ".join(str(i) for i in range(4000))
    (repo / "tether.yaml").write_text(
        f"stages:\n  s:\n    foreach: [{items}]\n    do:\n      cmd: echo ${{item}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "tether", "spec", "--json"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "internal error" not in err and "Traceback" not in err
