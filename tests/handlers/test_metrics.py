"""The operator's /metrics, scraped over HTTP: rollout state, analysis outcomes, monitoring verdicts,
reconcile counts; a deleted ModelDeployment's series disappear."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from harness.procs import free_port
from mlrollout.handlers import metrics

BODY: dict[str, Any] = {
    "metadata": {"namespace": "ml", "name": "churn"},
    "status": {
        "phase": "Progressing",
        "modelName": "churn-clf",
        "stableVersion": "6",
        "weights": {"stable": 80, "canary": 20},
        "rollout": {
            "desiredWeight": 25,
            "analysis": {
                "stage": "step-2",
                "startedAt": "2025-01-01T00:00:00Z",
                "verdict": "Running",
                "tallies": [
                    {"metric": "error-rate", "passed": 3, "failed": 1, "inconclusive": 2, "errors": 0}
                ],
            },
        },
        "monitoring": {
            "version": "6",
            "driftShare": 0.25,
            "columns": [
                {"column": "age", "test": "ks", "statistic": 0.3, "drifted": True},
                {"column": "plan", "test": "chi2", "statistic": 0.1, "drifted": False},
            ],
            "performance": {"accuracy": 0.91, "f1": 0.8, "roc_auc": 0.93},
            "importanceStability": 0.97,
        },
    },
}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    server = metrics.start_metrics_server(port, addr="127.0.0.1")
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()
    server.server_close()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def test_scrape_shows_rollout_analysis_and_monitoring(url: str) -> None:
    metrics.observe(BODY)
    metrics.reconciled(0.02, error=False)
    metrics.reconciled(0.5, error=True)
    text = scrape(url)
    obj = 'name="churn",namespace="ml"'
    who = f'model="churn-clf",{obj},version="6"'
    measured = "mlrollout_operator_analysis_measurements"
    for line in [
        f'mlrollout_operator_phase{{{obj},phase="Progressing"}} 1.0',
        f'mlrollout_operator_phase{{{obj},phase="Healthy"}} 0.0',
        f'mlrollout_operator_canary_weight_percent{{kind="desired",{obj}}} 25.0',
        f'mlrollout_operator_canary_weight_percent{{kind="actual",{obj}}} 20.0',
        f'{measured}{{metric="error-rate",{obj},outcome="failed",stage="step-2"}} 1.0',
        f'{measured}{{metric="error-rate",{obj},outcome="inconclusive",stage="step-2"}} 2.0',
        f'mlrollout_operator_analysis_verdict{{{obj},stage="step-2",verdict="Running"}} 1.0',
        f"mlrollout_operator_monitoring_drift_share{{{who}}} 0.25",
        f'mlrollout_operator_monitoring_column_drifted{{column="age",{who}}} 1.0',
        f'mlrollout_operator_monitoring_column_drifted{{column="plan",{who}}} 0.0',
        f'mlrollout_operator_monitoring_performance{{metric="roc_auc",{who}}} 0.93',
        f"mlrollout_operator_monitoring_importance_stability{{{who}}} 0.97",
        'mlrollout_operator_reconciles_total{result="error"}',
        "mlrollout_operator_reconcile_duration_seconds_count",
    ]:
        assert line in text, line


def test_deleted_object_leaves_no_series(url: str) -> None:
    metrics.observe(BODY)
    metrics.observe(
        {**BODY, "metadata": {"namespace": "ml", "name": "other"}, "status": {"phase": "Healthy"}}
    )
    assert 'name="other"' in scrape(url)
    metrics.forget("ml", "churn")
    metrics.observe({**BODY, "metadata": {"namespace": "ml", "name": "other", "deletionTimestamp": "x"}})
    text = scrape(url)
    assert 'name="churn"' not in text and 'name="other"' not in text


def test_odd_status_never_breaks_the_scrape(url: str) -> None:
    metrics.observe(
        {
            "metadata": {"namespace": "ml", "name": "odd"},
            "status": {
                "phase": 3,
                "weights": "x",
                "rollout": {"desiredWeight": True, "analysis": {"tallies": ["x", {}]}},
                "monitoring": {"driftShare": "high", "columns": [1, {"column": "c"}], "performance": [1]},
            },
        }
    )
    text = scrape(url)
    assert 'mlrollout_operator_phase{name="odd",namespace="ml",phase="Pending"} 0.0' in text
    metrics.forget("ml", "odd")
