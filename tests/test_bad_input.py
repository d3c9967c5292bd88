"""Inputs that deserve a clear error, not exit 70: each checked through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, run_tether, write

SPEC = """\
stages:
  train:
    cmd: python -c "print('trained')"
    params: [train.lr]
"""
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


@pytest.fixture
def project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    return repo


def assert_clear(proc: object, code: int, *needles: str) -> None:
    returncode, stderr = proc.returncode, proc.stderr  # type: ignore[attr-defined]
    assert returncode == code, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)


@pytest.mark.parametrize("command", [("spec",), ("status",), ("run", "--dry")])
def test_recursive_alias_in_spec_is_a_spec_error_with_its_line(
    project: Path, command: tuple[str, ...]
) -> None:
    write(project / "tether.yaml", SPEC + "vars:\n  loop: &x [*x]\n")
    assert_clear(run_tether(project, *command), 3, "tether.yaml:6", "recursive alias")


def test_recursive_alias_and_billion_laughs_in_params_are_params_errors(project: Path) -> None:
    write(project / "params.yaml", "train:\n  lr: 0.1\n  loop: &x [1, *x]\n")
    assert_clear(run_tether(project, "status"), 3, "params.yaml:3", "recursive alias")
    write(project / "params.yaml", "train:\n  lr: 0.1\n" + LAUGHS)
    assert_clear(run_tether(project, "run", "--dry", timeout=60), 3, "params.yaml:",
                 "expands to more than")
    write(project / "tether.yaml", SPEC + LAUGHS)
    write(project / "params.yaml", "train:\n  lr: 0.1\n")
    assert_clear(run_tether(project, "spec", timeout=60), 3, "tether.yaml:", "expands to more")


def test_recursive_alias_in_an_override_is_a_params_error(project: Path) -> None:
    assert_clear(run_tether(project, "run", "--dry", "-S", "train.lr=&x [*x]"), 3,
                 "recursive alias")


def test_deeply_nested_yaml_is_refused(project: Path) -> None:
    write(project / "params.yaml", "train:\n  lr: 0.1\n  deep: " + "[" * 5000 + "]" * 5000)
    assert_clear(run_tether(project, "status"), 3, "params.yaml", "nested more than")


def test_deeply_nested_filter_points_at_the_column(project: Path) -> None:
    expression = "(" * 2000 + "status == 'x'" + ")" * 2000
    proc = run_tether(project, "show", "--filter", expression)
    assert_clear(proc, 2, "nested more than 100 levels")
    caret = next(line for line in proc.stderr.splitlines() if line.strip() == "^")
    assert caret.index("^") - 2 == 100  # under the 101st parenthesis
    assert_clear(run_tether(project, "show", "--filter", "not " * 2000 + "status == 'x'"), 2,
                 "nested more than")
    fine = run_tether(project, "show", "--filter", "(" * 50 + "status == 'x'" + ")" * 50)
    assert fine.returncode == 0, fine.stderr


def test_dash_c_to_a_missing_directory_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    assert_clear(run_tether(project, "-C", str(tmp_path / "nope"), "show"), 2, "does not exist")
    write(tmp_path / "file", "x")
    assert_clear(run_tether(project, "-C", str(tmp_path / "file"), "status"), 2,
                 "is not a directory")


def test_a_duplicated_section_in_the_config_is_named_with_both_lines(project: Path) -> None:
    """YAML keeps the last of two equal keys silently: a second `schedules:` dropped the
    first one's schedules. Config files refuse it, saying where both are."""
    write(project / ".tether/config.yaml",
          "schedules:\n  nightly: {every: 1d, run: {args: []}}\nnotify:\n  on: [failed]\n"
          "schedules:\n  hourly: {every: 1h, run: {args: []}}\n")
    for args in (["schedule", "list"], ["notify", "status"]):
        proc = run_tether(project, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "duplicate key 'schedules' (first at line 1)" in proc.stderr, proc.stderr
        assert "line 5" in proc.stderr
