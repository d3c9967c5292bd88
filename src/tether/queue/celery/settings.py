"""The `queue:` section of the project config, and the Celery backend's settings.

Every enqueue reads them, so this module imports neither Celery, redis-py nor
PyYAML: the parsed section is kept in `.tether/tmp/queue-config.json` (mode 0600:
a broker URL may carry a password), keyed by a digest of `config.yaml` and
`config.local.yaml`, and YAML is parsed (by `tether.config.load_config`) only when
either file changed.

The Celery backend's config (`.tether/config.yaml`, committed, so every clone agrees)::

    queue:
      backend: celery
      broker: redis://host:6379/0     # or amqp://user@host:5672/vhost
      state: redis://host:6379/0      # where entries live; default: the broker, if Redis
      namespace: my-project           # default: the repository's root commit
      git_remote: origin              # snapshots go up, results come back (default: origin)
      broker_options: {}              # Celery broker_transport_options
      redispatch_after: 900           # re-send a wake-up for an entry waiting this long
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import blake3

from tether import __version__
from tether.errors import GitError, QueueError
from tether.gitstore.git import Git
from tether.layout import LOCAL_CONFIG, PROJECT_CONFIG, state_dir, tmp_dir
from tether.queue.base import Entry
from tether.structs import field, struct

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
_CACHE_NAME = "queue-config.json"


def queue_section(root: Path) -> dict[str, Any]:
    """The `queue:` mapping of the merged project and local config ({} when absent)."""
    texts: list[str | None] = []
    for name in (PROJECT_CONFIG, LOCAL_CONFIG):
        try:
            texts.append((state_dir(root) / name).read_text())
        except FileNotFoundError:
            texts.append(None)
    if texts == [None, None]:
        return {}
    # A digest, not the texts: the local config may hold other credentials.
    key = blake3.blake3(json.dumps([__version__, *texts]).encode()).hexdigest()
    cache_file = tmp_dir(root) / _CACHE_NAME
    try:
        cached = json.loads(cache_file.read_text())
        if cached["key"] == key and isinstance(cached["queue"], dict):
            return dict(cached["queue"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from tether.atomic import write_bytes
    from tether.config import load_config

    section = load_config(root).get("queue") or {}
    section = section if isinstance(section, dict) else {}
    with contextlib.suppress(OSError, TypeError, ValueError):  # a cache only saves time
        data = json.dumps({"key": key, "queue": section})
        if json.loads(data)["queue"] == section:  # only what JSON gives back unchanged
            # 0o600 from creation: the local config may hold a password.
            write_bytes(cache_file, data.encode(), fsync=False, mode=0o600)
    return section


def celery_extra_missing(exc: ImportError) -> QueueError:
    """The error for a Celery backend whose dependencies are not installed."""
    return QueueError("the celery queue backend is not available",
                      hint=f"install tether[celery] ({exc})")


@struct(frozen=True)
class CeleryConfig:
    broker: str
    state: str
    namespace: str
    git_remote: str | None
    broker_options: dict[str, Any] = field(default_factory=dict)
    redispatch_after: float = 900.0


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def load_celery_config(root: Path) -> CeleryConfig:
    """The `queue:` section of the project config, checked, with defaults filled in."""
    section = queue_section(root)
    broker = section.get("broker")
    if not broker:
        raise QueueError(
            "queue.backend is celery but queue.broker is not set",
            hint="set queue.broker in .tether/config.yaml, e.g. redis://host:6379/0 "
            "or amqp://user@host:5672/vhost",
        )
    broker = str(broker)
    if _scheme(broker) not in REDIS_SCHEMES + AMQP_SCHEMES:
        raise QueueError(f"queue.broker: {broker!r} is neither a redis:// nor an amqp:// URL")
    state = section.get("state")
    if not state:
        if _scheme(broker) in AMQP_SCHEMES:
            raise QueueError(
                "with an amqp:// broker the queue state needs a store: queue.state is not set",
                hint="set queue.state: redis://host:6379/0 in .tether/config.yaml (RabbitMQ "
                "carries the wake-ups; entries, leases and logs live in Redis)",
            )
        state = broker
    state = str(state)
    if _scheme(state) not in REDIS_SCHEMES:
        raise QueueError(f"queue.state: {state!r} is not a redis:// URL",
                         hint="the Celery backend keeps entries in Redis")
    git = Git(root)
    # Both git questions at once (each is a process).
    roots = None if section.get("namespace") else git.start("rev-list", "--max-parents=0", "HEAD")
    remotes = None if "git_remote" in section else git.start("remote")
    if roots is not None:
        found = roots.result(check=False).stdout.decode().split()
        namespace = sorted(found)[0][:12] if found else "default"  # same in every clone
    else:
        namespace = str(section["namespace"])
    if remotes is None:
        git_remote = section["git_remote"] or None
    else:
        git_remote = "origin" if "origin" in remotes.result().stdout.decode().split() else None
    return CeleryConfig(
        broker=broker, state=state, namespace=namespace,
        git_remote=str(git_remote) if git_remote else None,
        broker_options=dict(section.get("broker_options") or {}),
        redispatch_after=float(section.get("redispatch_after", 900.0)),
    )


def push_snapshots(root: Path, git_remote: str | None, entries: Sequence[Entry]) -> None:
    """Push the entries' snapshot refs to `git_remote`, so remote workers can fetch them."""
    if git_remote is None:
        return
    refs = sorted({entry.snapshot_ref for entry in entries})
    try:
        Git(root).run("push", "--quiet", git_remote, *[f"{r}:{r}" for r in refs])
    except GitError as exc:
        raise QueueError(
            f"cannot push the workspace snapshot to git remote {git_remote!r}, "
            "so remote workers could not fetch it",
            hint=f"{exc.message}; or set queue.git_remote: null for local workers only",
        ) from None
    _push_tracked_data(root, sorted({entry.snapshot for entry in entries}))


def _push_tracked_data(root: Path, snapshots: list[str]) -> None:
    """Send the content of data tracked with `tether add` and of the data sources pinned
    in the snapshots to the artifact remote, where a worker on another machine pulls it
    (when one is set; else such a worker fetches a source itself, verified by its pin)."""
    from tether.experiments.artifacts import tracked_data

    keys = set(tracked_data(Git(root), snapshots).values())
    if not keys:
        return
    from tether.cache.remote import push_objects
    from tether.errors import RemoteError
    from tether.project import object_store, open_remote

    try:
        remote = open_remote(root, None)
    except RemoteError:
        return  # no artifact remote: only workers sharing this machine's cache have it
    push_objects(object_store(root), remote, keys)
