"""The project around a run: its state folder, the pipeline to run, and the cache and
artifact remotes as its config sets them up (the cache itself never reads the config)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.layout import STATE_GITIGNORE, state_dir
from tether.spec import Pipeline, Stage
from tether.spec_cache import load_pipeline_cached

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore
    from tether.cache.remote import Remote

COMMAND_STAGE = "run"


def ensure_state_dir(root: Path) -> Path:
    """Create `.tether/` with its ignore rules if it is not there yet."""
    folder = state_dir(root)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        folder.mkdir(parents=True, exist_ok=True)
        ignore.write_text(STATE_GITIGNORE)
    return folder


def command_pipeline(
    root: Path, argv: list[str], cwd: Path | None = None,
    limits: Mapping[str, Any] | None = None,
) -> Pipeline:
    """A one-stage pipeline for `tether run -- CMD ARGS...` (no spec needed).

    `limits` holds the command's settings: `timeout`, `stall_timeout`, `expected`, and the
    `metrics` and `plots` files it writes (relative to `cwd`; default `metrics.json`).
    """
    from tether.errors import UsageError
    from tether.spec.values import normalize_path

    here = (cwd or Path.cwd()).resolve()
    try:
        wdir = here.relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        wdir = "."
    limits = dict(limits or {})
    files: dict[str, tuple[str, ...]] = {}
    for kind, default in (("metrics", ["metrics.json"]), ("plots", [])):
        try:
            files[kind] = tuple(normalize_path(str(name), wdir)
                                for name in limits.get(kind) or default)
        except ValueError as exc:
            raise UsageError(f"--{kind}: {exc}") from None
    stage = Stage(
        name=COMMAND_STAGE,
        cmd=(_shell_join(argv),),
        wdir=wdir,
        metrics=files["metrics"],
        plots=files["plots"],
        timeout=limits.get("timeout"),
        stall_timeout=limits.get("stall_timeout"),
        expected=limits.get("expected"),
    )
    return Pipeline(source=root / "<command>", stages={COMMAND_STAGE: stage})


def load_project_pipeline(
    root: Path, command: list[str] | None,
    limits: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> Pipeline:
    """The pipeline `tether run` works on: the bare command, or the project's spec."""
    if command is not None:
        return command_pipeline(root, command, cwd or Path(os.getcwd()), limits)
    from tether.layout import tmp_dir

    return load_pipeline_cached(root, tmp_dir(root) / "spec-cache.json")


def object_store(root: Path) -> ObjectStore:
    """The object cache of the project at `root`, placing files as `cache.link` says."""
    from tether.cache.objects import ObjectStore
    from tether.config import link_order

    return ObjectStore(root, link_order=link_order(root))


def open_remote(root: Path, name: str | None = None) -> Remote:
    """The artifact remote `name` (default: the default one) of the project at `root`."""
    from tether.cache.remote import Remote
    from tether.config import get_remote

    config = get_remote(root, name)
    return Remote(config.url, config.options, config.name)


def init_project(root: Path, *, force: bool = False, spec_text: str | None = None) -> list[Path]:
    """Write a commented `tether.yaml` (the template, or `spec_text`) and the `.tether/`
    folder; return what was created."""
    from importlib import resources

    from tether.errors import UsageError
    from tether.layout import PROJECT_CONFIG, SPEC_PY, SPEC_PY_SHADOWING, SPEC_YAML

    created: list[Path] = []
    spec = root / SPEC_YAML
    for python_spec in (root / SPEC_PY, root / SPEC_PY_SHADOWING):
        if python_spec.exists() and not force:
            raise UsageError(
                f"{python_spec} already defines this project's pipeline",
                hint=f"keep one spec: delete {python_spec.name}, or use it instead of "
                     "tether.yaml",
            )
    if spec.exists() and not force:
        raise UsageError(
            f"{spec} already exists; nothing was changed",
            hint="use `tether init --force` to overwrite it with the template",
        )
    templates = resources.files("tether") / "templates"
    spec.write_text(spec_text or templates.joinpath("tether.yaml").read_text())
    created.append(spec)
    folder = state_dir(root)
    had_ignore = (folder / ".gitignore").exists()
    ensure_state_dir(root)
    if not had_ignore:
        created.append(folder / ".gitignore")
    config = folder / PROJECT_CONFIG
    if not config.exists():
        config.write_text(templates.joinpath("config.yaml").read_text())
        created.append(config)
    return created


def _shell_join(argv: list[str]) -> str:
    import shlex  # here, not at the top: only a bare command needs it

    return shlex.join(argv)
