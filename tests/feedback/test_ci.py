"""`tether ci init`: both templates, hosted and self-hosted, valid by the forges' schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_tether


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its builtin (vendored) schema: no network needed."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("self_hosted", [False, True])
@pytest.mark.parametrize(("forge", "path", "schema"), [
    ("github", ".github/workflows/tether.yml", "vendor.github-workflows"),
    ("gitlab", ".gitlab-ci.yml", "vendor.gitlab-ci"),
])
def test_template_validates(repo: Path, forge: str, path: str, schema: str,
                            self_hosted: bool) -> None:
    args = ["ci", "init", forge] + (["--self-hosted"] if self_hosted else [])
    proc = run_tether(repo, *args)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {path}" in proc.stdout
    written = repo / path
    checked = check_jsonschema(schema, written)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = written.read_text()
    for needed in ("tether run", "tether push", "tether report --comment", "tether gate",
                   ".tether/cache", ".tether/reports/"):
        assert needed in text, needed
    doc = yaml.safe_load(text)
    if forge == "github":
        job = doc["jobs"]["tether"]
        assert job["runs-on"] == (["self-hosted", "gpu"] if self_hosted else "ubuntu-latest")
        assert job["steps"][0]["with"]["fetch-depth"] == 0
        assert doc["permissions"]["pull-requests"] == "write"
    else:
        assert doc["variables"]["GIT_DEPTH"] == "0"
        assert "TETHER_STAGES" in doc["variables"]
        assert ("tags" in doc["tether"]) is self_hosted
    # Not overwritten without --force.
    again = run_tether(repo, *args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_tether(repo, *args, "--force").returncode == 0


def test_a_broken_workflow_fails_the_schema_check(tmp_path: Path) -> None:
    """The check is real: a job without runs-on is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    steps: [{run: echo}]\n")
    assert check_jsonschema("vendor.github-workflows", bad).returncode != 0


def test_main_branch_from_config(repo: Path) -> None:
    (repo / ".tether").mkdir(exist_ok=True)
    (repo / ".tether" / "config.yaml").write_text("feedback: {main: trunk}\n")
    proc = run_tether(repo, "ci", "init", "github", "--print")
    assert proc.returncode == 0, proc.stderr
    assert "branches: [trunk]" in proc.stdout and "MAIN_BRANCH: trunk" in proc.stdout
    assert not (repo / ".github").exists()
