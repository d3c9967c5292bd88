from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tether.record.environment import (
    REDACTED,
    capture_environment,
    installed_packages,
    is_sensitive_name,
    list_gpus,
    redact_environment,
    redact_text,
)

FAKE_SECRET = "AKIAFAKESECRET123456"


def test_capture_has_the_documented_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    environment = capture_environment()
    assert set(environment) == {
        "python",
        "packages",
        "os",
        "hostname",
        "cpu_count",
        "memory_bytes",
        "gpus",
        "env_vars",
    }
    assert environment["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["python"]["executable"] == sys.executable
    assert set(environment["os"]) == {"system", "release", "machine", "platform"}
    assert isinstance(environment["cpu_count"], int)
    assert environment["memory_bytes"] is None or environment["memory_bytes"] > 0
    assert isinstance(environment["gpus"], list)
    json.dumps(environment)  # JSON-able as a whole
    assert FAKE_SECRET not in json.dumps(environment)


def test_packages_include_installed_distributions_sorted() -> None:
    packages = capture_environment({})["packages"]
    assert "pyyaml" in packages
    assert "pytest" in packages
    assert packages["tether"] == "0.1.0"
    assert list(packages) == sorted(packages)


def test_packages_match_importlib_metadata() -> None:
    from importlib import metadata

    expected = {
        dist.metadata["Name"].lower().replace("_", "-").replace(".", "-"): dist.version
        for dist in metadata.distributions()
    }
    found = dict(installed_packages())
    for name, version in expected.items():
        assert found.get(name) == version, name


def test_env_vars_are_selected_and_redacted() -> None:
    env = {
        "PATH": "/usr/bin",
        "PYTHONHASHSEED": "0",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "OMP_NUM_THREADS": "4",
        "TETHER_RUN_ID": "r1",
        "GITHUB_TOKEN": "ghp_notarealtoken",
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "HF_TOKEN": "hf_fake_token_value",
        "EDITOR": "vim",
        "HOME": "/home/someone",
        "CI": "true",
    }
    env_vars = capture_environment(env)["env_vars"]
    assert env_vars == {
        "CI": "true",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "GITHUB_TOKEN": REDACTED,
        "HF_TOKEN": REDACTED,
        "OMP_NUM_THREADS": "4",
        "PATH": "/usr/bin",
        "PYTHONHASHSEED": "0",
        "TETHER_RUN_ID": "r1",
    }


def test_secret_embedded_in_a_recorded_variable_is_scrubbed() -> None:
    env = {
        "CI_JOB_TOKEN": "job-token-value-123",
        "CI_REPOSITORY_URL": "https://gitlab-ci-token:job-token-value-123@gitlab.example/x.git",
        "TETHER_DB": "postgres://user:hunter2@db.example/runs",
    }
    env_vars = capture_environment(env)["env_vars"]
    assert (
        env_vars["CI_REPOSITORY_URL"] == f"https://gitlab-ci-token:{REDACTED}@gitlab.example/x.git"
    )
    assert env_vars["TETHER_DB"] == f"postgres://user:{REDACTED}@db.example/runs"


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "db_password",
        "MYSQL_PASSWD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTP_AUTH",
        "SSH_PRIVATE",
        "OPENAI_API_KEY",
        "GH_PAT",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["PATH", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LANG"])
def test_ordinary_names(name: str) -> None:
    assert not is_sensitive_name(name)


def test_redact_environment_keeps_all_names() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "EDITOR": "vim"}
    assert redact_environment(env) == {"AWS_SECRET_ACCESS_KEY": REDACTED, "EDITOR": "vim"}


def test_redact_text_removes_secret_values() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "EDITOR": "vim", "API_KEY": "short"}
    text = f"connecting with {FAKE_SECRET}...\nkey={FAKE_SECRET}\nshort stays, vim stays\n"
    assert redact_text(text, env) == (
        f"connecting with {REDACTED}...\nkey={REDACTED}\nshort stays, vim stays\n"
    )


def test_redact_text_prefers_longest_overlapping_secret() -> None:
    env = {"A_TOKEN": "abcdef", "B_TOKEN": "abcdefghij", "C_SECRET": "zz.*zz"}
    text = "abcdefghij abcdef zz.*zz zzXzz"
    assert redact_text(text, env) == f"{REDACTED} {REDACTED} {REDACTED} zzXzz"


def test_redact_text_without_secrets_returns_text_unchanged() -> None:
    text = "nothing to see\n" * 1000
    assert redact_text(text, {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET}) is text


def test_redact_text_on_large_log() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "GITHUB_TOKEN": "ghp_abcdefghijkl"}
    text = ("epoch 3 loss 0.25 acc 0.91\n" * 200_000) + f"leak {FAKE_SECRET} ghp_abcdefghijkl\n"
    clean = redact_text(text, env)
    assert FAKE_SECRET not in clean
    assert "ghp_abcdefghijkl" not in clean
    assert clean.endswith(f"leak {REDACTED} {REDACTED}\n")


def _fake_nvidia_smi(directory: Path, body: str) -> str:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(directory)


def test_gpus_from_nvidia_smi(tmp_path: Path) -> None:
    path = _fake_nvidia_smi(
        tmp_path,
        "echo 'NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05'\n"
        "echo 'NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05'",
    )
    gpus = capture_environment({"PATH": path})["gpus"]
    assert (
        gpus
        == [
            {
                "name": "NVIDIA A100-SXM4-80GB",
                "memory_bytes": 81920 * 2**20,
                "driver_version": "535.104.05",
            }
        ]
        * 2
    )


def test_failing_nvidia_smi_means_no_gpus(tmp_path: Path) -> None:
    path = _fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert list_gpus(path) == []


def test_no_nvidia_smi_means_no_gpus(tmp_path: Path) -> None:
    assert list_gpus(str(tmp_path)) == []


def test_capture_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert capture_environment()["env_vars"]["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "3"
