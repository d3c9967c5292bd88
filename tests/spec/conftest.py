"""Helpers for spec tests: write a spec file into a temporary project and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tether.errors import SpecError
from tether.spec import Pipeline, load_pipeline

WriteSpec = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write `text` (dedented, first line = line 1) to `tmp_path/name`."""

    def write(text: str, name: str = "tether.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def load(root: Path) -> Pipeline:
    return load_pipeline(root)


def problems(root: Path) -> list[str]:
    """The problems loading the spec at `root` reports."""
    with pytest.raises(SpecError) as caught:
        load_pipeline(root)
    return caught.value.problems
