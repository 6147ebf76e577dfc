"""The real operator's /metrics on the real control plane: a ModelDeployment reconciled into a
canary analysis step (on the real Prometheus, with no traffic: inconclusive) shows its phase,
versions, weights and analysis outcomes; a monitor verdict written into status.monitoring
shows per model and version; deleting the object removes its series; the harness's real Prometheus
scrapes the endpoint."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique
from prometheus_client.parser import text_string_to_metric_families

from harness.services import Prometheus
from mlrollout.api import names
from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.handlers import metric_names as n

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: kwok makes its pods Ready
MONITORING = MonitoringStatus.model_validate(
    {
        "verdict": "Drift",
        "version": "1",
        "lastRun": "2026-01-01T00:00:00Z",
        "samples": 500,
        "driftShare": 0.5,
        "columns": [
            {
                "column": "age",
                "test": "ks",
                "statistic": 0.31,
                "pValue": 0.0001,
                "effectSize": 0.4,
                "drifted": True,
            },
            {"column": "plan", "test": "chi2", "statistic": 1.2, "pValue": 0.55, "drifted": False},
        ],
        "performance": {"accuracy": 0.87, "f1": 0.8, "roc_auc": 0.9},
        "labelledSamples": 200,
        "importanceStability": 0.93,
    }
).model_dump(mode="json", by_alias=True, exclude_none=True)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(port: int, metric: str, /, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    want = set(labels.items())
    return {got: v for (name, got), v in scrape(port).items() if name == metric and want <= got}


def one(port: int, metric: str, /, **labels: str) -> float | None:
    found = series(port, metric, **labels)
    return next(iter(found.values())) if len(found) == 1 else None


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def write_monitoring(cluster: Cluster, md: str) -> None:
    """As the monitor Job does: status.monitoring only, through the status subresource."""
    cluster.objects.patch_namespaced_custom_object_status(
        names.GROUP,
        names.VERSION,
        cluster.namespace,
        names.PLURAL,
        md,
        {"status": {"monitoring": MONITORING}},
        _content_type="application/merge-patch+json",
    )


def test_operator_metrics_follow_the_object_and_prometheus_scrapes_them(
    operator_factory: Callable[..., OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    prometheus: Prometheus,
) -> None:
    model = registry.register(unique("opm"), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    op = operator_factory()
    ns, md = cluster.namespace, "om"
    obj = {"namespace": ns, "name": md}
    cluster.create_md(
        md,
        {
            "model": {"name": model, "alias": "challenger"},
            "registry": {"trackingUri": registry.uri, "championAlias": "champion"},
            "serving": {"image": IMAGE, "replicas": 2},
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"analysis": {}}]}},
            # No traffic reaches these pods: every measurement is inconclusive, and the run pauses.
            "analysis": {
                "prometheus": {"address": prometheus.url},
                "interval": "1s",
                "count": 5,
                "minRequests": 10,
                "inconclusiveLimit": 2,
                "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
            },
        },
    )
    eventually(lambda: one(op.port, n.PHASE, **obj, phase="Healthy") == 1.0, 120, "phase Healthy in /metrics")
    assert one(op.port, n.INFO, **obj, model=model, stable_version="1") == 1.0
    assert one(op.port, n.CONDITION, **obj, type="Ready") == 1.0

    # A candidate at its analysis step: phase, canary version, both weights, the analysis outcomes.
    registry.set_alias(model, "challenger", "2")
    stage = {**obj, "stage": "step-1"}
    eventually(
        lambda: one(op.port, n.ANALYSIS_VERDICT, **stage, verdict="Inconclusive") == 1.0,
        180,
        "the inconclusive analysis verdict in /metrics",
    )
    status = status_of(cluster, md)
    [tally] = status["rollout"]["analysis"]["tallies"]
    measured = {**stage, "metric": "error-rate"}
    assert (
        one(op.port, n.ANALYSIS_MEASUREMENTS, **measured, outcome="inconclusive")
        == tally["inconclusive"]
        >= 3
    )
    assert one(op.port, n.ANALYSIS_MEASUREMENTS, **measured, outcome="passed") == 0.0
    assert status["rollout"]["desiredWeight"] == 25
    assert one(op.port, n.PHASE, **obj, phase=status["phase"]) == 1.0
    assert one(op.port, n.PHASE, **obj, phase="Healthy") == 0.0
    assert one(op.port, n.INFO, **obj, canary_version="2") == 1.0
    assert one(op.port, n.CANARY_WEIGHT, **obj, kind="desired") == 25.0
    assert one(op.port, n.CANARY_WEIGHT, **obj, kind="actual") == float(status["weights"]["canary"])
    assert (one(op.port, f"{n.RECONCILES}_total", result="ok") or 0) >= 2
    assert (one(op.port, f"{n.RECONCILE_SECONDS}_count") or 0) >= 2

    # The monitor's verdict (written by someone else) reaches /metrics through the watch.
    write_monitoring(cluster, md)
    who = {**obj, "model": model, "version": "1"}
    eventually(lambda: one(op.port, n.DRIFT_SHARE, **who) == 0.5, 60, "drift share in /metrics")
    assert one(op.port, n.DRIFT_DETECTED, **who) == 1.0
    assert one(op.port, n.COLUMN_DRIFTED, **who, column="age") == 1.0
    assert one(op.port, n.COLUMN_DRIFTED, **who, column="plan") == 0.0
    assert one(op.port, n.PERFORMANCE, **who, metric="roc_auc") == 0.9
    assert one(op.port, n.IMPORTANCE_STABILITY, **who) == 0.93

    # The real Prometheus scrapes the operator (file-SD target) and sees the same series.
    prometheus.add_target(f"127.0.0.1:{op.port}", component="mlrollout-operator", test_namespace=ns)

    def in_prometheus() -> bool:
        found = prometheus.query(f'{n.PHASE}{{namespace="{ns}",name="{md}",phase="{status["phase"]}"}} == 1')
        drift = prometheus.query(f'{n.DRIFT_SHARE}{{namespace="{ns}",model="{model}",version="1"}}')
        return len(found) == 1 and len(drift) == 1 and float(drift[0]["value"][1]) == 0.5

    eventually(in_prometheus, 60, "the operator's series in Prometheus")
    up = prometheus.query(f'up{{test_namespace="{ns}",component="mlrollout-operator"}}')
    assert [float(r["value"][1]) for r in up] == [1.0]

    # Deleted: no series of the object is left (the process-wide counters stay).
    cluster.delete_md(md)
    eventually(lambda: cluster.get_md(md) is None, 90, "ModelDeployment gone")
    eventually(lambda: not [k for k in scrape(op.port) if ("namespace", ns) in k[1]], 30, "series gone")
    assert (one(op.port, f"{n.RECONCILES}_total", result="ok") or 0) >= 2
