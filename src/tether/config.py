"""Project config (`.tether/config.yaml`, committed) and local config (`config.local.yaml`).

The local file is never committed (`.tether/.gitignore` ignores all but
`config.yaml`) and wins over the project file key by key. Shape::

    default_remote: store
    remotes:
      store: {url: "s3://bucket/tether", options: {endpoint_url: "http://..."}}
    cache:
      link: [reflink, copy]     # any order of reflink, hardlink, copy
      jobs: 8                   # parallel transfers

Credentials are never written to the committed file: a URL with a password or a
secret-looking query parameter, or an option named like a secret, is refused
there (use `--local`, or the backend's own mechanism: AWS_* variables, ~/.aws,
gcloud, ssh keys).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.atomic import write_bytes
from tether.errors import RemoteError, UsageError
from tether.layout import LOCAL_CONFIG, PROJECT_CONFIG, state_dir
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.spec.nodes import Node

LINK_MODES = ("reflink", "hardlink", "copy")  # how the cache places objects: tether.cache.links
DEFAULT_LINK_ORDER = ("reflink", "copy")
_SECRET_NAME = re.compile(r"key|secret|password|passwd|token|credential", re.IGNORECASE)
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@struct(frozen=True)
class RemoteConfig:
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    default: bool = False
    local: bool = False  # defined in config.local.yaml


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import yaml

    from tether.spec.yamlguard import safe_load

    try:
        data = safe_load(path.read_text(), text_keys=True)  # `notify: {on: ...}`
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_path(root: Path, *, local: bool) -> Path:
    return state_dir(root) / (LOCAL_CONFIG if local else PROJECT_CONFIG)


def read_config_file(root: Path, *, local: bool) -> dict[str, Any]:
    """One of the two config files alone (a section that merges lists reads both)."""
    return _read(config_path(root, local=local))


def project_config_nodes(root: Path) -> tuple[str, Node | None, list[str]]:
    """The committed config as a node tree whose values remember their line, for sections
    checked with `file:line` errors (`schedules:`): its label, the tree (None when absent
    or empty) and the problems found while reading it."""
    import yaml

    from tether.spec.nodes import Problems, yaml_node

    label = f".tether/{PROJECT_CONFIG}"
    try:
        text = config_path(root, local=False).read_text(encoding="utf-8")
    except FileNotFoundError:
        return label, None, []
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{label}: cannot read it: {exc}") from None
    problems = Problems(label)
    try:
        node = yaml_node(text, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}" if mark else label
        raise UsageError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{label}: not valid YAML ({exc})") from None
    return label, node, problems.lines


def load_config(root: Path) -> dict[str, Any]:
    """The project config with the local config merged over it."""
    return _merge(_read(config_path(root, local=False)), _read(config_path(root, local=True)))


def _write(path: Path, data: dict[str, Any]) -> None:
    import yaml

    header = []
    if path.exists():
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False) if data else ""
    # The local config is where credentials belong: readable by its owner only.
    mode = 0o600 if path.name == LOCAL_CONFIG else 0o644
    write_bytes(path, ("\n".join(header) + ("\n" if header else "") + body).encode(), mode=mode)


def link_order(root: Path) -> tuple[str, ...]:
    """`cache.link` from the config: how objects are placed in the workspace."""
    value = load_config(root).get("cache", {}).get("link")
    if value is None:
        return DEFAULT_LINK_ORDER
    modes = [value] if isinstance(value, str) else list(value)
    bad = [m for m in modes if m not in LINK_MODES]
    if bad or not modes:
        raise UsageError(f"cache.link: unknown mode {bad or modes}",
                         hint=f"use a list of {', '.join(LINK_MODES)}")
    return tuple(modes)


def transfer_jobs(root: Path) -> int:
    value = load_config(root).get("cache", {}).get("jobs", 16)
    return max(1, int(value))


def _check_secrets(url: str, options: dict[str, Any]) -> None:
    from tether.urls import mask_urls, url_secrets

    found = url_secrets(url)
    if found:
        raise UsageError(
            f"the URL {mask_urls(url)} holds {' and '.join(found)}; "
            f"it would be committed in .tether/{PROJECT_CONFIG}",
            hint="give credentials through the backend's usual mechanism, or add the remote "
            f"with --local (kept in .tether/{LOCAL_CONFIG}, never committed)",
        )
    for name in options:
        if _SECRET_NAME.search(name):
            raise UsageError(
                f"option {name!r} looks like a credential; it would be committed",
                hint=f"use --local to keep it in .tether/{LOCAL_CONFIG}",
            )


def set_remote(
    root: Path, name: str, url: str, *, default: bool = False, local: bool = False,
    options: dict[str, Any] | None = None,
) -> RemoteConfig:
    """Add or replace remote `name`; with `default`, make it the default artifact remote."""
    if not _REMOTE_NAME.match(name):
        raise UsageError(f"{name!r} is not a valid remote name",
                         hint="use letters, digits, '.', '_' and '-'")
    options = dict(options or {})
    if not local:
        _check_secrets(url, options)
    path = config_path(root, local=local)
    data = _read(path)
    remotes = data.setdefault("remotes", {})
    entry: dict[str, Any] = {"url": url}
    if options:
        entry["options"] = options
    remotes[name] = entry
    if default or not list_remotes(root):
        data["default_remote"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, data)
    return get_remote(root, name)


def remove_remote(root: Path, name: str) -> None:
    """Remove remote `name` from both config files (and as the default)."""
    found = False
    for local in (False, True):
        path = config_path(root, local=local)
        data = _read(path)
        if name in data.get("remotes", {}):
            del data["remotes"][name]
            found = True
            if not data["remotes"]:
                del data["remotes"]
        if data.get("default_remote") == name:
            del data["default_remote"]
            found = True
        if found and path.exists():
            _write(path, data)
    if not found:
        raise UsageError(f"no remote named {name!r}", hint="`tether remote list` shows them")


def list_remotes(root: Path) -> list[RemoteConfig]:
    """Every configured artifact remote, the default marked."""
    local_names = set(_read(config_path(root, local=True)).get("remotes", {}) or {})
    config = load_config(root)
    default = config.get("default_remote")
    remotes = []
    for name, entry in (config.get("remotes") or {}).items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise UsageError(f"remote {name!r} in the tether config has no url")
        remotes.append(RemoteConfig(
            name=name, url=str(entry["url"]), options=dict(entry.get("options") or {}),
            default=name == default, local=name in local_names,
        ))
    return remotes


def get_remote(root: Path, name: str | None = None) -> RemoteConfig:
    """Remote `name`, or the default artifact remote; a usage error when there is none."""
    remotes = list_remotes(root)
    for remote in remotes:
        if (name is None and remote.default) or remote.name == name:
            return remote
    if name is None:
        raise RemoteError(
            "no default artifact remote is configured",
            hint="add one: tether remote add NAME URL --default (or use --no-artifacts)",
        )
    raise UsageError(f"no remote named {name!r}", hint="`tether remote list` shows them")


def source_options(root: Path, name: str) -> dict[str, Any]:
    """fsspec options of data source `name` (`sources: {NAME: {...}}`): credentials belong
    in .tether/config.local.yaml, never committed; the committed config may hold the rest
    (an endpoint, a region)."""
    from tether.layout import cache_root

    local = read_config_file(root, local=True)
    if not local and cache_root(root) != root:
        # A queue worker's worktree has no local config: the main work tree's holds the
        # credentials of this machine.
        local = read_config_file(cache_root(root), local=True)
    sources = _merge(read_config_file(root, local=False), local).get("sources") or {}
    options = sources.get(name) if isinstance(sources, dict) else None
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise UsageError(f"sources.{name}: expected a mapping of fsspec options")
    committed = (read_config_file(root, local=False).get("sources") or {}).get(name) or {}
    leaked = [key for key in committed if _SECRET_NAME.search(str(key))]
    if leaked:
        raise UsageError(
            f"sources.{name}.{leaked[0]} in .tether/{PROJECT_CONFIG} looks like a credential, "
            "which would be committed",
            hint=f"move it to .tether/{LOCAL_CONFIG} (never committed)",
        )
    return dict(options)
