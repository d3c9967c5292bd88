"""The `data:` section: declared data sources, validated with `file:line` problems.

Pure like the rest of `spec/`: it checks names, URLs and paths; fetching lives in
`cache/sources.py`, putting the bytes in place for a run in `execute/sources.py`.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from tether.pathguard import overlaps
from tether.spec.fields import check_keys
from tether.spec.model import DataSource, Stage
from tether.spec.nodes import Entry, Node, Problems, describe
from tether.spec.values import normalize_path

SOURCE_KEYS = ("source", "path", "subset", "prepare")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
STATE_DIR = ".tether"


def read_sources(entry: Entry, problems: Problems) -> dict[str, DataSource]:
    """Every valid source of a `data:` mapping; problems for the others."""
    node = entry.node
    if node.kind != "map":
        problems.add(node.line, "data",
                     f"expected a mapping of name -> {{source: URL, path: FILE}}, "
                     f"found {describe(node)}")
        return {}
    sources: dict[str, DataSource] = {}
    taken: dict[str, str] = {}
    for name, item in check_keys(node, "data", [e.key for e in node.entries], problems).items():
        source = _source(name, item, problems)
        if source is None:
            continue
        if source.path in taken:
            problems.add(item.line, f"data.{name}.path",
                         f"{source.path} is also the path of source {taken[source.path]!r}")
            continue
        taken[source.path] = name
        sources[name] = source
    return sources


def _source(name: str, item: Entry, problems: Problems) -> DataSource | None:
    where = f"data.{name}"
    if not _NAME.fullmatch(name):
        problems.add(item.line, where,
                     "source names may only contain letters, digits, '_', '.' and '-'")
        return None
    if item.node.kind != "map":
        problems.add(item.node.line, where,
                     f"expected a mapping like {{source: URL, path: FILE}}, "
                     f"found {describe(item.node)}")
        return None
    before = problems.reported
    fields = check_keys(item.node, where, SOURCE_KEYS, problems)
    url = _text(fields, "source", where, problems, required=item.line)
    path = _text(fields, "path", where, problems, required=item.line)
    prepare = _text(fields, "prepare", where, problems)
    subset = _subset(fields.get("subset"), where, problems)
    if url is not None:
        _check_url(url, fields["source"].node, where, problems)
    if path is not None:
        path = _check_path(path, fields["path"].node, where, problems)
    if subset and prepare is None:
        problems.add(fields["subset"].line, f"{where}.subset",
                     "a subset needs a `prepare` command that derives the path from the "
                     "fetched file (see docs/spec.md, `data:`)")
    if problems.reported != before or url is None or path is None:
        return None
    return DataSource(name=name, source=url, path=path, subset=MappingProxyType(subset or {}),
                      prepare=prepare, line=item.line)


def _text(fields: dict[str, Entry], key: str, where: str, problems: Problems,
          required: int | None = None) -> str | None:
    entry = fields.get(key)
    if entry is None:
        if required is not None:
            problems.add(required, where, f"missing {key!r}")
        return None
    value = entry.node.scalar
    if entry.node.kind != "scalar" or not isinstance(value, str) or not value.strip():
        problems.add(entry.node.line, f"{where}.{key}",
                     f"expected a non-empty string, found {describe(entry.node)}")
        return None
    return value


def _subset(entry: Entry | None, where: str, problems: Problems) -> dict[str, object] | None:
    if entry is None:
        return None
    node = entry.node
    if node.kind != "map":
        problems.add(node.line, f"{where}.subset",
                     f"expected a mapping of name -> value, found {describe(node)}")
        return None
    values = {}
    for key, value in check_keys(node, f"{where}.subset", [e.key for e in node.entries],
                                 problems).items():
        if value.node.kind != "scalar":
            problems.add(value.node.line, f"{where}.subset.{key}",
                         f"expected a string, number or boolean, found {describe(value.node)}")
            continue
        values[key] = value.node.scalar
    return values


def _check_url(url: str, node: Node, where: str, problems: Problems) -> None:
    from tether.urls import mask_urls, url_secrets

    secrets = url_secrets(url)
    if secrets:
        problems.add(node.line, f"{where}.source",
                     f"{mask_urls(url)} holds {' and '.join(secrets)}, which would be "
                     f"committed: give credentials in .tether/config.local.yaml "
                     f"(`sources:`) or the backend's environment instead")
    elif _URL.match(url) is None and not url.startswith("/"):
        problems.add(node.line, f"{where}.source",
                     f"expected a URL (s3://, https://, file://...) or an absolute path, "
                     f"found {url!r}")


def _check_path(path: str, node: Node, where: str, problems: Problems) -> str | None:
    try:
        normal = normalize_path(path)
    except ValueError as exc:
        problems.add(node.line, f"{where}.path", str(exc))
        return None
    if normal == "." or normal == STATE_DIR or normal.startswith(STATE_DIR + "/"):
        problems.add(node.line, f"{where}.path",
                     f"{path!r} is refused: it must name a file outside .tether/")
        return None
    return normal


def check_sources_against_stages(sources: dict[str, DataSource], stages: dict[str, Stage],
                                 problems: Problems) -> None:
    """A source's path is an input: no stage may declare it (or a folder around it) as an
    output."""
    for source in sources.values():
        for stage in stages.values():
            clash = [out for out in stage.outs if overlaps(out, source.path)]
            if clash:
                problems.add(source.line, f"data.{source.name}.path",
                             f"{source.path} is also an output of stage {stage.name!r} "
                             f"({clash[0]}): a source's path is an input")
