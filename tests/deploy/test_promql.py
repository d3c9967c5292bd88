"""The PromQL reader the manifest tests rely on reads what an expression reads."""

from __future__ import annotations

import pytest

from deploy.promql import label_values, reads


def test_metrics_matchers_and_grouping_are_read() -> None:
    found = reads('sum by (status) (increase(tether_runs_total{status!="success", '
                  'queue=~"$queue"}[$__rate_interval])) / on (queue) group_left '
                  'max(tether_workers) > bool 3')
    assert found.metrics == {"tether_runs_total": {"status", "queue"}, "tether_workers": set()}
    assert found.grouping == {"status", "queue"}
    assert reads("absent(tether_queue_depth) or absent(x_y)").metrics == {
        "tether_queue_depth": set(), "x_y": set()}


def test_what_it_cannot_read_is_an_error() -> None:
    with pytest.raises(ValueError):
        reads("tether_queue_depth{queue}")
    with pytest.raises(ValueError):
        label_values("query_result(tether_queue_depth)")
    assert label_values("label_values(tether_queue_depth, queue)") == (
        "tether_queue_depth", "queue")
