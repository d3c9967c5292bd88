"""Secrets: which values must never be stored, and scrubbing them out of whatever is.

A run builds one `Secrets` (`discover`) from its environment and the project
config. Every place a value travels to storage — the record (argv, commands,
message, diff, logs, params, environment), `tether.lock`, the commit message, the
files of the experiment tree, queue snapshots, the error log — passes through
`scrub`, `scrub_bytes` or `scrub_json`, which replace each secret value with
`[redacted:NAME]`, NAME being the variable it came from.

Secret values come from:
- variables whose name looks secret (TOKEN, SECRET, KEY, PASSWORD, CREDENTIAL,
  AUTH, PRIVATE, COOKIE, ..._PWD, ...) and well-known ones (MYSQL_PWD, SSHPASS...);
- the password, and secret-looking query parameters, of any URL held in any
  variable (DATABASE_URL, REDIS_URL, *_DSN, a CI clone URL...);
- `redact: {names: [...], values_from: [...]}` in `.tether/config.yaml` (or the
  local config): more variable names (shell patterns), and dotenv-style files
  whose values are secrets.
Values shorter than MIN_SECRET_LENGTH are ignored: "true" or "1234" would turn up
everywhere by chance.

URLs shown to a user or written to a log go through `tether.urls.mask_urls`, which hides
passwords (`user:***@`) and secret-looking query parameters (`sig=***`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tether.urls import url_values

# A value shorter than this is too likely to occur by chance ("true", "1234"):
# scrubbing it would mangle unrelated text, so such values are not protected.
MIN_SECRET_LENGTH = 6

_SENSITIVE_NAME = re.compile(
    r"TOKEN|SECRET|KEY|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|CREDS|AUTH(?!OR)|PRIVATE|COOKIE"
    r"|(?:^|_)PAT(?:_|$)|(?:^|_)DSN(?:_|$)|_PWD$|(?:^|_)PASS$",
    re.IGNORECASE,
)
# Secrets whose names the pattern above does not catch.
KNOWN_SECRET_NAMES = frozenset({"MYSQL_PWD", "SSHPASS", "PGPASSWORD", "AWS_SESSION_TOKEN",
                                "REDISCLI_AUTH", "NETRC_PASSWORD", "TETHER_NOTIFY",
                                "TETHER_EVENTS"})
# Whitespace-separated lists of URLs that may hold tokens anywhere (slack://A/B/C):
# each URL is a secret of its own.
URL_LIST_NAMES = frozenset({"TETHER_NOTIFY", "TETHER_EVENTS"})
# Named like secrets, but their values are paths or switches, not secrets.
_NOT_A_VALUE = re.compile(
    r"^TOKENIZERS_|_(?:FILE|PATH|DIR|SOCK|HOME)$|^GOOGLE_APPLICATION_CREDENTIALS$",
    re.IGNORECASE,
)



def is_sensitive_name(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret."""
    return name.upper() in KNOWN_SECRET_NAMES or _SENSITIVE_NAME.search(name) is not None


def label(name: str) -> str:
    """What a secret value of variable `name` is replaced with."""
    return f"[redacted:{name}]"


# --------------------------------------------------------------------------- Secrets


class Secrets:
    """A set of secret values, each with the name of the variable it came from."""

    __slots__ = ("_bytes", "_encoded", "_labels", "_pattern", "_values", "names")

    def __init__(self, found: Mapping[str, str] | None = None) -> None:
        """`found`: secret value -> variable name; too-short values are dropped."""
        kept = {v: n for v, n in (found or {}).items() if len(v) >= MIN_SECRET_LENGTH}
        # Longest first: a secret that contains another is replaced whole.
        self._values = tuple(sorted(kept, key=lambda v: (-len(v), v)))
        self._labels = {value: label(kept[value]) for value in self._values}
        self._encoded = tuple(
            (value.encode(), label(kept[value]).encode()) for value in self._values
        )
        self.names = {value: kept[value] for value in self._values}
        self._pattern: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None

    def __bool__(self) -> bool:
        return bool(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced by `[redacted:NAME]`."""
        if not self._values or not text:
            return text
        # Substring tests are fast C scans; the regex runs only when a secret is present.
        if not any(value in text for value in self._values):
            return text
        if self._pattern is None:
            self._pattern = re.compile("|".join(re.escape(v) for v in self._values))
        return self._pattern.sub(lambda match: self._labels[match.group()], text)

    def names_in(self, data: bytes) -> list[str]:
        """The names of the secrets whose values occur in `data`."""
        return sorted({self.names[value.decode()] for value, _ in self._encoded if value in data})

    def scrub_bytes(self, data: bytes) -> bytes:
        """`data` with every secret value (as UTF-8) replaced by `[redacted:NAME]`."""
        if not self._encoded or not any(value in data for value, _ in self._encoded):
            return data
        if self._bytes is None:
            self._bytes = re.compile(b"|".join(re.escape(v) for v, _ in self._encoded))
        replacement = dict(self._encoded)
        return self._bytes.sub(lambda match: replacement[match.group()], data)

    def scrub_json(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every string scrubbed."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_json(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_json(v) for v in value]
        return value

    def scrub_file(self, path: Path, *, chunk: int = 1 << 20) -> None:
        """Rewrite the file at `path` (if any) with its secrets scrubbed, a chunk at a time:
        a stage log may be far larger than the memory worth spending on it."""
        if not self._encoded:
            return
        try:
            if not self._file_holds_secret(path, chunk):
                return
        except OSError:
            return
        if self._bytes is None:
            self._bytes = re.compile(b"|".join(re.escape(v) for v, _ in self._encoded))
        replacement = dict(self._encoded)
        keep = max(len(value) for value, _ in self._encoded) - 1
        tmp = path.with_name(f".{path.name}.scrub-tmp")
        with open(path, "rb") as source, open(tmp, "wb") as out:
            carry = b""
            while True:
                data = source.read(chunk)
                buffer = carry + data
                if not data:
                    out.write(self._bytes.sub(lambda m: replacement[m.group()], buffer))
                    break
                # Emit what no secret can straddle; a match across the cut is taken whole.
                cut, pos, pieces = max(0, len(buffer) - keep), 0, []
                for match in self._bytes.finditer(buffer):
                    if match.start() >= cut:
                        break
                    pieces += [buffer[pos:match.start()], replacement[match.group()]]
                    pos = match.end()
                cut = max(cut, pos)
                pieces.append(buffer[pos:cut])
                out.write(b"".join(pieces))
                carry = buffer[cut:]
        os.replace(tmp, path)

    def _file_holds_secret(self, path: Path, chunk: int) -> bool:
        overlap = max(len(value) for value, _ in self._encoded)
        tail = b""
        with open(path, "rb") as handle:
            while data := handle.read(chunk):
                window = tail + data
                if any(value in window for value, _ in self._encoded):
                    return True
                tail = window[-overlap:]
        return False


def secret_values(
    env: Mapping[str, str], *, extra_names: Iterable[str] = ()
) -> dict[str, str]:
    """Secret value -> variable name, from one environment."""
    patterns = tuple(extra_names)
    found: dict[str, str] = {}
    for name, value in env.items():
        if not value:
            continue
        if (is_sensitive_name(name) and not _NOT_A_VALUE.search(name)) or (
            patterns and _matches_any(name, patterns)
        ):
            found.setdefault(value, name)
        if name in URL_LIST_NAMES:
            for url in value.split():
                found.setdefault(url, name)
        for part in url_values(value):
            found.setdefault(part, name)
    return found


def _matches_any(name: str, patterns: tuple[str, ...]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def discover(
    env: Mapping[str, str] | None = None,
    *,
    root: Path | None = None,
    more_envs: Iterable[Mapping[str, str]] = (),
) -> Secrets:
    """The secrets of a run: from `env` (default os.environ), `more_envs` (stage `env:`)
    and the `redact:` section of the config of the project at `root`."""
    names, files = configured_redaction(root) if root is not None else ([], [])
    found = secret_values(os.environ if env is None else env, extra_names=names)
    for more in more_envs:
        for value, name in secret_values(more, extra_names=names).items():
            found.setdefault(value, name)
    for file in files:
        path = Path(os.path.expanduser(file))
        path = path if path.is_absolute() or root is None else root / path
        for value, name in read_values_file(path).items():
            found.setdefault(value, name)
    if root is not None:
        for value, name in configured_url_secrets(root).items():
            found.setdefault(value, name)
    return Secrets(found)


def configured_url_secrets(root: Path) -> dict[str, str]:
    """Notification URLs and event sinks of the local config (where URLs with
    credentials live): each URL, its password and secret query values, and its
    token-like path parts (16 characters or more), as secrets."""
    from tether.layout import LOCAL_CONFIG, state_dir

    try:
        text = (state_dir(root) / LOCAL_CONFIG).read_bytes()
    except OSError:
        return {}
    if b"notify" not in text and b"events" not in text:
        return {}
    from tether.config import read_config_file

    try:
        data = read_config_file(root, local=True)
    except Exception:
        return {}
    found: dict[str, str] = {}
    for section, key in (("notify", "urls"), ("events", "sinks")):
        part = data.get(section)
        urls = part.get(key) if isinstance(part, dict) else None
        for url in [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []:
            if not isinstance(url, str):
                continue
            name = f"{section}.{key}"
            found.setdefault(url, name)
            for value in url_values(url):
                found.setdefault(value, name)
            for piece in url.partition("://")[2].replace("?", "/").replace("@", "/").split("/"):
                if len(piece) >= 16:
                    found.setdefault(piece, name)
    return found


def configured_redaction(root: Path) -> tuple[list[str], list[str]]:
    """`redact.names` and `redact.values_from` of the project (and local) config."""
    from tether.layout import LOCAL_CONFIG, PROJECT_CONFIG, state_dir

    texts = []
    for filename in (PROJECT_CONFIG, LOCAL_CONFIG):
        try:
            texts.append((state_dir(root) / filename).read_bytes())
        except OSError:
            continue
    if not any(b"redact" in text for text in texts):
        return [], []  # the common case, without importing yaml
    from tether.config import load_config
    from tether.errors import UsageError

    section = load_config(root).get("redact") or {}
    if not isinstance(section, dict) or set(section) - {"names", "values_from"}:
        raise UsageError(
            ".tether/config.yaml: `redact` takes `names` and `values_from`",
            hint="e.g. redact: {names: [MY_SERVICE_*], values_from: [.env]}",
        )
    result: list[list[str]] = []
    for key in ("names", "values_from"):
        items = section.get(key) or []
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise UsageError(f".tether/config.yaml: redact.{key} must be a list of strings")
        result.append(items)
    return result[0], result[1]


def read_values_file(path: Path) -> dict[str, str]:
    """Secret value -> name from a dotenv-style file: `NAME=value` lines (`export `,
    quotes and comments allowed); any other line is a secret named after the file.
    A missing file gives nothing (a machine without it has none of its secrets)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            if value:
                found.setdefault(value, name.strip())
                for part in url_values(value):
                    found.setdefault(part, name.strip())
        else:
            found.setdefault(line, path.name)
    return found
