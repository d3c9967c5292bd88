from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tether.record.environment import (
    capture_environment,
    installed_packages,
    list_gpus,
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
        "GITHUB_TOKEN": "[redacted:GITHUB_TOKEN]",
        "HF_TOKEN": "[redacted:HF_TOKEN]",
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
    assert env_vars["CI_REPOSITORY_URL"] == (
        "https://gitlab-ci-token:[redacted:CI_JOB_TOKEN]@gitlab.example/x.git"
    )
    assert env_vars["TETHER_DB"] == "postgres://user:[redacted:TETHER_DB]@db.example/runs"


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
