"""Identifiers: run ids that sort by time, and short random ids users type a prefix of.

`os.urandom` directly: the `secrets` module would add `hmac` and OpenSSL to the
imports of every `tether run --queue`.
"""

from __future__ import annotations

import os


def new_run_id(now: float) -> str:
    """Sortable by time, unique across machines."""
    return f"{int(now * 1000):012x}{os.urandom(6).hex()}"


def new_id() -> str:
    """A short random id (queue entries and snapshots)."""
    return os.urandom(5).hex()
