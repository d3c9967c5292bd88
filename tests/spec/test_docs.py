"""The examples in docs/spec.md load as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tether.spec import load_pipeline

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize(
    "block", [b for b in _blocks("yaml") if b.startswith(("version:", "stages:"))]
)
def test_yaml_examples_load(tmp_path: Path, block: str) -> None:
    (tmp_path / "tether.yaml").write_text(block)
    assert load_pipeline(tmp_path).stages


def test_python_example_loads(tmp_path: Path) -> None:
    (block,) = _blocks("python")
    (tmp_path / "tetherfile.py").write_text(block)
    pipeline = load_pipeline(tmp_path)
    assert list(pipeline.stages)[:3] == ["prepare", "train@small", "train@large"]
    assert pipeline.order(["evaluate"]) == [
        "prepare",
        "train@small",
        "train@large",
        "evaluate@small",
        "evaluate@large",
    ]
    assert pipeline.metrics["loss"].tolerance == 0.01
