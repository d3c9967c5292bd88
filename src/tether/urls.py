"""URLs that may carry credentials: masking them for people, finding their secrets.

A leaf module (the standard library only): config, cache remotes, the queue's
state store and redaction all show or check URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# `scheme://user:password@host`: the password (greedy: it may hold an unencoded '@').
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@?#]*:)(?P<pw>[^/\s?#]*)@")
# `?sig=...&token=...`: query parameters whose name says their value is a secret.
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&;](?P<name>[^=&;#\s/?]*(?:secret|token|passw|pwd|credential|signature|auth"
    r"|key|session)[^=&;#\s/?]*|sig|sas|pass)=)(?P<value>[^&;#\s\"']+)",
    re.IGNORECASE,
)
MASK = "***"


def mask_urls(text: str) -> str:
    """`text` with URL passwords and secret-looking query parameters replaced by ***."""
    if "://" in text:
        text = _URL_PASSWORD.sub(_mask_password, text)
    if "=" in text:
        text = _SECRET_QUERY.sub(rf"\g<head>{MASK}", text)
    return text


def _mask_password(match: re.Match[str]) -> str:
    password = match.group("pw")
    if password.startswith("[redacted:") or not password:
        return match.group()
    return f"{match.group('head')}{MASK}@"


def url_secrets(url: str) -> list[str]:
    """What in `url` is a credential: 'a password', 'query parameter X'; [] if nothing."""
    found = ["a password" for match in _URL_PASSWORD.finditer(url) if match.group("pw")]
    found += [f"query parameter {m.group('name')!r}" for m in _SECRET_QUERY.finditer(url)]
    return found


def url_values(value: str) -> Iterable[str]:
    """The passwords and secret query values inside the URLs of `value`."""
    if "://" not in value:
        return
    from urllib.parse import unquote  # here: only a URL-holding variable needs it

    for match in _URL_PASSWORD.finditer(value):
        yield match.group("pw")
        yield unquote(match.group("pw"))
    if "=" in value:
        for match in _SECRET_QUERY.finditer(value):
            yield match.group("value")
            yield unquote(match.group("value"))
