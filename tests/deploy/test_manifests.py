"""deploy/: every manifest parses, has the right kind and apiVersion, runs commands
tether really has, and queries only series `tether metrics` really exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.exported import ISSUE_16, has_metrics_command, real_exposition, series
from deploy.promql import label_values, reads

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").rglob("*.yaml"))
DASHBOARD = DEPLOY / "grafana" / "tether-dashboard.json"
API_VERSIONS = {
    "Deployment": "apps/v1", "Service": "v1", "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1", "ScaledObject": "keda.sh/v1alpha1",
    "ScaledJob": "keda.sh/v1alpha1", "TriggerAuthentication": "keda.sh/v1alpha1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _all(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in MANIFESTS for doc in _docs(path) if doc["kind"] == kind]


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "ScaledJob":
        return doc["spec"]["jobTargetRef"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _container_args(doc: dict[str, Any], name: str) -> list[str]:
    [container] = [c for c in _pod(doc)["containers"] if c["name"] == name]
    return [str(arg) for arg in container["args"]]


def _queries(doc: dict[str, Any]) -> list[str]:
    return [t["metadata"]["query"] for t in doc["spec"]["triggers"] if t["type"] == "prometheus"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, frozenset[str]]:
    """What `tether metrics --once` exports (issue 16's list until the command exists)."""
    if not has_metrics_command():
        return ISSUE_16
    from conftest import git

    root = tmp_path_factory.mktemp("exported") / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "commit", "-q", "--allow-empty", "-m", "start")
    return series(real_exposition(root))


def _check_reads(expr: str, exported: dict[str, frozenset[str]]) -> set[str]:
    """The metrics `expr` reads; fails on a metric or label tether does not export."""
    found = reads(expr)
    assert found.metrics, f"{expr!r} reads no metric"
    for metric, labels in found.metrics.items():
        assert metric in exported, f"{expr!r}: tether exports no {metric}"
        assert labels <= exported[metric], f"{expr!r}: {metric} has no label {labels}"
    known = set().union(*(exported[m] for m in found.metrics))
    assert found.grouping <= known, f"{expr!r} groups by labels its metrics lack"
    return set(found.metrics)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_parses_with_the_right_kind_and_api_version(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == API_VERSIONS[doc["kind"]], (path, doc["kind"])
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"]


def test_the_kustomization_names_files_that_exist() -> None:
    [(_, kustomization)] = _all("Kustomization")
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for _, doc in _all("Deployment") + _all("ScaledJob")
            for c in _pod(doc)["containers"] + _pod(doc).get("initContainers", [])}
    assert used == images


def test_workers_drain_by_requeueing_within_their_grace_period() -> None:
    from tether.cli.main import build_parser
    from tether.execute.supervisor import Limits

    parser = build_parser("worker")
    for _, doc in [*_all("Deployment"), *_all("ScaledJob")]:
        if doc["metadata"]["name"] == "tether-metrics":
            continue
        args = _container_args(doc, "worker")
        assert args[0] == "tether"
        parsed = parser.parse_args(args[1:])  # only options tether worker has
        assert (parsed.command, parsed.on_term, parsed.jobs) == ("worker", "requeue", 1)
        # The stage's SIGTERM grace, then up to a minute of state-store retries.
        assert _pod(doc)["terminationGracePeriodSeconds"] >= Limits().grace + 60
    [(_, gpu)] = _all("ScaledJob")
    parsed = parser.parse_args(_container_args(gpu, "worker")[1:])
    assert parsed.exit_when_idle and "gpu" in parsed.tags and parsed.queues == ["gpu"]
    assert _pod(gpu)["nodeSelector"] and _pod(gpu)["restartPolicy"] == "Never"


def test_the_exporter_runs_tether_metrics() -> None:
    [(_, exporter)] = [(p, d) for p, d in _all("Deployment")
                       if d["metadata"]["name"] == "tether-metrics"]
    args = _container_args(exporter, "metrics")
    assert args[:4] == ["tether", "-C", "/work/project", "metrics"]
    if has_metrics_command():
        from tether.cli.main import build_parser

        build_parser("metrics").parse_args(args[1:])


def test_scaled_objects_target_the_worker_on_depth_plus_running(
    exported: dict[str, frozenset[str]],
) -> None:
    workers = {d["metadata"]["name"] for _, d in _all("Deployment")}
    prometheus = 0
    for _, doc in _all("ScaledObject"):
        assert doc["spec"]["scaleTargetRef"]["name"] in workers
        assert doc["spec"]["minReplicaCount"] == 0
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                prometheus += 1
                query = trigger["metadata"]["query"]
                assert _check_reads(query, exported) == {"tether_queue_depth",
                                                         "tether_queue_running"}
                assert trigger["metadata"]["ignoreNullValues"] == "false"  # absent != empty
                assert doc["spec"]["fallback"]["replicas"] > 0
    assert prometheus == 1
    [(_, job)] = _all("ScaledJob")
    [query] = _queries(job)
    assert _check_reads(query, exported) == {"tether_queue_depth"}
    assert reads(query).metrics["tether_queue_depth"] == {"queue"}


def test_broker_scalers_watch_the_broker_queue_tether_routes_to() -> None:
    from tether.queue.celery.app import celery_queue_name

    seen = set()
    for _, doc in _all("ScaledObject"):
        for trigger in doc["spec"]["triggers"]:
            name = trigger["metadata"].get("listName") or trigger["metadata"].get("queueName")
            if name is not None:
                seen.add(trigger["type"])
                assert name == celery_queue_name("my-project", "default")
    assert seen == {"redis", "rabbitmq"}


def test_alerts_catch_a_vanished_gauge(exported: dict[str, frozenset[str]]) -> None:
    [(_, rule)] = _all("PrometheusRule")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    for expr in exprs:
        _check_reads(expr, exported)
    assert any("absent(tether_queue_depth)" in expr for expr in exprs)


def test_the_dashboard_shows_the_queue_from_exported_series(
    exported: dict[str, frozenset[str]],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    read: set[str] = set()
    kinds = set()
    for panel in dashboard["panels"]:
        kinds.add(panel["type"])
        for target in panel["targets"]:
            read |= _check_reads(target["expr"], exported)
    for variable in dashboard["templating"]["list"]:
        metric, label = label_values(variable["query"]["query"])
        assert label in exported[metric]
    assert {"tether_queue_depth", "tether_queue_running", "tether_runs_total",
            "tether_stage_duration_seconds_bucket", "tether_oldest_waiting_seconds",
            "tether_lost_workers_total"} <= read
    assert "heatmap" in kinds


@pytest.mark.skipif(not has_metrics_command(), reason="tether metrics is not merged yet")
def test_the_real_exporter_matches_the_list(exported: dict[str, frozenset[str]]) -> None:
    for name, labels in ISSUE_16.items():
        if name == "tether_notifications_total" and name not in exported:
            continue  # only once notifications exist
        assert exported.get(name) == labels, name

