"""The one rendering of refs the read side skipped (invalid name or record)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tether.record.validate import Skipped


def warn_skipped(skipped: Iterable[Skipped]) -> None:
    """One warning line per skipped ref on stderr, naming it and what is wrong."""
    for ref, problem in skipped:
        print(f"tether: warning: skipped {ref}: {problem} (`git update-ref -d {ref}` "
              "removes it)", file=sys.stderr)
