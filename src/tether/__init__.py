"""tether: run ML experiments under supervision and record every run as a git commit.

Training scripts use three functions: `tether.params()`, `tether.log(...)` and
`tether.summary(...)`. They are loaded on first use so `import tether` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not imported from typing, which costs more than all of tether.api
if TYPE_CHECKING:
    from typing import Any

    from tether.api import log, params, summary

__version__ = "0.1.0"
__all__ = ["__version__", "log", "params", "summary"]

_API_NAMES = frozenset({"log", "params", "summary"})


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        from tether import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'tether' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API_NAMES)
