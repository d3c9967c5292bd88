"""The environment a run happened in, and scrubbing secrets out of what gets recorded.

`capture_environment` returns JSON-able data: Python, installed packages, OS,
host, CPUs, memory, GPUs and the environment variables that bear on
reproducibility. Variables with a sensitive name are listed as `[redacted:NAME]`;
the other values have secrets and URL passwords scrubbed (`tether.record.redact`).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tether.record.redact import Secrets, is_sensitive_name, label, secret_values
from tether.urls import mask_urls

NVIDIA_SMI_TIMEOUT = 5.0

# Variables that change what a run computes or say where it ran.
_RECORDED_PREFIXES = (
    "TETHER_",
    "PYTHON",
    "CUDA_",
    "CUDNN_",
    "CUBLAS_",
    "NCCL_",
    "NVIDIA_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "NUMBA_",
    "TORCH_",
    "PYTORCH_",
    "TF_",
    "XLA_",
    "JAX_",
    "HF_",
    "TRANSFORMERS_",
    "TOKENIZERS_",
    "SLURM_",
    "GITHUB_",
    "GITLAB_",
    "CI_",
    "BUILDKITE_",
    "CIRCLE",
    "JENKINS_",
)
_RECORDED_NAMES = frozenset(
    {
        "PATH",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "VIRTUAL_ENV",
        "CONDA_DEFAULT_ENV",
        "CONDA_PREFIX",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_NUMERIC",
        "TZ",
        "HOSTNAME",
        "CI",
        "SOURCE_DATE_EPOCH",
        "BUILD_NUMBER",
        "BUILD_ID",
    }
)


def _recorded_value(name: str, value: str, secrets: Secrets) -> str:
    if is_sensitive_name(name):
        return label(name)
    # A secret can hide in an innocent variable, e.g. a CI clone URL embedding a job token.
    return mask_urls(secrets.scrub(value))


def _is_recorded(name: str) -> bool:
    return name in _RECORDED_NAMES or name.startswith(_RECORDED_PREFIXES)


def select_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Return the reproducibility-relevant variables of `env`, sorted and redacted."""
    secrets = Secrets(secret_values(env))
    return {name: _recorded_value(name, env[name], secrets)
            for name in sorted(env) if _is_recorded(name)}


# --------------------------------------------------------------------------- capture


def capture_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Describe the machine and environment a run happens in, as JSON-able data."""
    env = os.environ if env is None else env
    return {
        "python": _python_info(),
        "packages": dict(installed_packages()),
        "os": _os_info(),
        "hostname": os.uname().nodename,
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "gpus": list_gpus(env.get("PATH")),
        "env_vars": select_environment(env),
    }


@functools.cache
def _python_info() -> dict[str, str]:
    return {
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
    }


@functools.cache
def _os_info() -> dict[str, str]:
    uname = os.uname()
    return {
        "system": uname.sysname,
        "release": uname.release,
        "machine": uname.machine,
        "platform": f"{uname.sysname}-{uname.release}-{uname.machine}",
    }


@functools.cache
def installed_packages() -> tuple[tuple[str, str], ...]:
    """Installed distributions as sorted (name, version) pairs; computed once per process.

    Names are PEP 503 normalized (`PyYAML` → `pyyaml`, `scikit_learn` → `scikit-learn`)
    so records from different installers compare equal.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        for name, version in _distributions_on(entry or "."):
            found.setdefault(normalize_name(name), version)  # sys.path order wins
    return tuple(sorted(found.items()))


def normalize_name(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions_on(entry: str) -> list[tuple[str, str]]:
    """(name, version) of the distributions installed on one sys.path entry."""
    # Reading every METADATA file through importlib.metadata takes ~1 ms per package,
    # seconds in a large ML environment; a wheel's `name-version.dist-info` directory
    # name already holds both. Anything irregular goes through importlib.metadata.
    if not os.path.exists(entry):
        return []
    if not os.path.isdir(entry):
        from importlib import metadata

        pairs = (_read_metadata(dist) for dist in metadata.distributions(path=[entry]))
        return [pair for pair in pairs if pair is not None]
    try:
        names = os.listdir(entry)
    except OSError:
        return []
    result = []
    for filename in names:
        if filename.endswith(".dist-info"):
            stem = filename[: -len(".dist-info")]
            name, dash, version = stem.partition("-")
            if dash and name and version and "-" not in version:
                result.append((name, version))
                continue
        elif not filename.endswith(".egg-info"):
            continue
        described = _read_pkg_info(os.path.join(entry, filename))
        if described is None:
            from importlib import metadata

            described = _read_metadata(metadata.Distribution.at(os.path.join(entry, filename)))
        if described is not None:
            result.append(described)
    return result


def _read_pkg_info(path: str) -> tuple[str, str] | None:
    """Name and version from an egg-info's PKG-INFO headers (no importlib.metadata)."""
    info = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
    name = version = None
    try:
        with open(info, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
                elif not line.strip():
                    break
    except OSError:
        return None
    return (name, version) if name and version else None


def _read_metadata(dist: Any) -> tuple[str, str] | None:
    try:
        name, version = dist.metadata["Name"], dist.version
    except (OSError, ValueError, KeyError):
        return None
    return (name, version) if name and version else None


def memory_bytes() -> int | None:
    """Total physical memory in bytes, or None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def list_gpus(search_path: str | None = None) -> list[dict[str, Any]]:
    """NVIDIA GPUs as reported by `nvidia-smi` found on `search_path`; [] if none or on error."""
    import shutil  # here, not at the top: not worth importing on every run

    binary = shutil.which("nvidia-smi", path=search_path)
    if binary is None:
        return []
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        completed = subprocess.run(
            [binary, query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    if completed.returncode != 0:
        return []
    gpus = []
    for line in completed.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3 or not fields[0]:
            continue
        name, memory, driver = fields
        gpus.append({"name": name, "memory_bytes": _parse_memory(memory), "driver_version": driver})
    return gpus


_MEMORY_UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def _parse_memory(text: str) -> int | None:
    """Bytes in an nvidia-smi memory figure such as `81920 MiB`; None if unreadable."""
    number, _, unit = text.partition(" ")
    factor = _MEMORY_UNITS.get(unit.strip().upper() or "MIB")
    try:
        return int(float(number) * factor) if factor else None
    except ValueError:
        return None
