"""The compiled-spec cache gives back the pipeline the spec describes, gate keys included."""

from __future__ import annotations

from pathlib import Path

from conftest import write
from tether.project import load_project_pipeline

SPEC = """\
stages:
  train:
    cmd: python train.py
    metrics: [metrics.json]
metrics:
  acc: {direction: max, tolerance: 1%, warn: 3%}
  latency: {direction: min, gate: false}
  rare: {direction: max, allow_missing: true}
"""


def test_cached_spec_keeps_every_metric_rule(repo: Path) -> None:
    write(repo / "tether.yaml", SPEC)
    (repo / ".tether").mkdir()
    fresh = load_project_pipeline(repo, None)
    cached = load_project_pipeline(repo, None)  # from .tether/tmp/spec-cache.json
    assert (repo / ".tether" / "tmp" / "spec-cache.json").exists()
    assert {n: r.to_json() for n, r in cached.metrics.items()} == {
        n: r.to_json() for n, r in fresh.metrics.items()}
    assert cached.metrics["acc"].warn == 0.03
    assert cached.metrics["latency"].gate is False
    assert cached.metrics["rare"].allow_missing is True
