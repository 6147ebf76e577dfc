"""The operator's /metrics in-process: what a status becomes (rollout state, analysis outcomes,
conditions, monitoring verdicts), reconcile counts and errors, deleted objects leaving no series, and
the HTTP endpoint (/healthz gated on readiness, /metrics in the format the scraper asks for)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from harness.procs import free_port
from mlrollout.handlers import endpoints, metric_names, metrics

BODY: dict[str, Any] = {
    "metadata": {"namespace": "ml", "name": "churn"},
    "spec": {"monitoring": {"performance": {"metric": "roc_auc", "min": 0.85}}},
    "status": {
        "phase": "Progressing",
        "modelName": "churn-clf",
        "stableVersion": "6",
        "canaryVersion": "7",
        "weights": {"stable": 80, "canary": 20},
        "conditions": [
            {"type": "Degraded", "status": "False", "reason": "AsExpected"},
            {"type": "Paused", "status": "True", "reason": "PausedAtStep"},
        ],
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
            "verdict": "Drift",
            "version": "6",
            "lastRun": "2025-01-01T00:00:10Z",
            "samples": 900,
            "labelledSamples": 120,
            "driftShare": 0.25,
            "columns": [
                {
                    "column": "age",
                    "test": "ks",
                    "statistic": 0.3,
                    "pValue": 0.001,
                    "effectSize": 0.4,
                    "drifted": True,
                },
                {"column": "plan", "test": "chi2", "statistic": 0.1, "drifted": False},
            ],
            "predictionDrift": {"column": "prediction", "test": "chi2", "statistic": 9.5, "drifted": True},
            "performance": {"accuracy": 0.91, "f1": 0.8, "roc_auc": 0.93},
            "importanceStability": 0.97,
        },
    },
}
OBJ = {"namespace": "ml", "name": "churn"}
WHO = {**OBJ, "model": "churn-clf", "version": "6"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scraped() -> Samples:
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    return parse(body.decode())


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def names_of(samples: Samples, **labels: str) -> set[str]:
    want = set(labels.items())
    return {name for name, got in samples if want <= got}


@pytest.fixture(autouse=True)
def clean() -> Any:
    yield
    for ns, name in metrics.observed():
        metrics.forget(ns, name)


def test_status_becomes_rollout_analysis_condition_and_monitoring_series() -> None:
    metrics.observe(BODY)
    s = scraped()
    n = metric_names
    assert value(s, n.PHASE, **OBJ, phase="Progressing") == 1.0
    assert value(s, n.PHASE, **OBJ, phase="Healthy") == 0.0
    assert value(s, n.INFO, **OBJ, model="churn-clf", stable_version="6", canary_version="7") == 1.0
    assert value(s, n.CONDITION, **OBJ, type="Paused", reason="PausedAtStep") == 1.0
    assert value(s, n.CONDITION, **OBJ, type="Degraded", reason="AsExpected") == 0.0
    assert value(s, n.CANARY_WEIGHT, **OBJ, kind="desired") == 25.0
    assert value(s, n.CANARY_WEIGHT, **OBJ, kind="actual") == 20.0
    tally = {**OBJ, "stage": "step-2", "metric": "error-rate"}
    assert value(s, n.ANALYSIS_MEASUREMENTS, **tally, outcome="passed") == 3.0
    assert value(s, n.ANALYSIS_MEASUREMENTS, **tally, outcome="failed") == 1.0
    assert value(s, n.ANALYSIS_MEASUREMENTS, **tally, outcome="inconclusive") == 2.0
    assert value(s, n.ANALYSIS_MEASUREMENTS, **tally, outcome="errors") == 0.0
    assert value(s, n.ANALYSIS_VERDICT, **OBJ, stage="step-2", verdict="Running") == 1.0
    assert value(s, n.DRIFT_VERDICT, **WHO, verdict="Drift") == 1.0
    assert value(s, n.DRIFT_DETECTED, **WHO) == 1.0
    assert value(s, n.DRIFT_SHARE, **WHO) == 0.25
    assert value(s, n.COLUMN_DRIFTED, **WHO, column="age") == 1.0
    assert value(s, n.COLUMN_DRIFTED, **WHO, column="plan") == 0.0
    assert value(s, n.COLUMN_STATISTIC, **WHO, column="age", test="ks") == 0.3
    assert value(s, n.COLUMN_P_VALUE, **WHO, column="age") == 0.001
    assert value(s, n.COLUMN_EFFECT_SIZE, **WHO, column="age") == 0.4
    assert value(s, n.COLUMN_P_VALUE, **WHO, column="plan") is None  # absent, not zero
    assert value(s, n.PREDICTION_DRIFTED, **WHO) == 1.0
    assert value(s, n.PREDICTION_STATISTIC, **WHO, test="chi2") == 9.5
    for metric, expected in {"accuracy": 0.91, "f1": 0.8, "roc_auc": 0.93}.items():
        assert value(s, n.PERFORMANCE, **WHO, metric=metric) == expected
    assert value(s, n.PERFORMANCE_MIN, **OBJ, metric="roc_auc") == 0.85
    assert value(s, n.PERFORMANCE_MAX, **OBJ, metric="roc_auc") is None
    assert value(s, n.IMPORTANCE_STABILITY, **WHO) == 0.97
    assert value(s, n.SAMPLES, **WHO) == 900.0
    assert value(s, n.LABELLED_SAMPLES, **WHO) == 120.0
    assert value(s, n.LAST_RUN, **WHO) == 1735689610.0
    # every per-object family shows for a full status (only one of the spec's bounds is set)
    assert names_of(s, **OBJ) == set(n.PER_OBJECT) - {n.PERFORMANCE_MAX}


def test_monitoring_version_falls_back_to_stable_and_no_verdict_no_series() -> None:
    status = {"phase": "Healthy", "modelName": "m", "stableVersion": "3", "monitoring": {"driftShare": 0.0}}
    metrics.observe({"metadata": {"namespace": "a", "name": "b"}, "status": status})
    s = scraped()
    assert value(s, metric_names.DRIFT_SHARE, namespace="a", name="b", model="m", version="3") == 0.0
    assert not names_of(s, namespace="a") & {metric_names.DRIFT_DETECTED, metric_names.PERFORMANCE}


def test_reconcile_counts_durations_and_errors_by_kind() -> None:
    before = scraped()
    metrics.reconciled(0.02)
    metrics.reconciled(0.5, metric_names.ERROR_CONFLICT)
    metrics.reconciled(0.1, metric_names.ERROR_ACTION_FAILED)
    after = scraped()

    def delta(metric: str, /, **labels: str) -> float:
        return (value(after, metric, **labels) or 0.0) - (value(before, metric, **labels) or 0.0)

    total = f"{metric_names.RECONCILES}_total"
    errors = f"{metric_names.RECONCILE_ERRORS}_total"
    assert delta(total, result="ok") == 1.0 and delta(total, result="error") == 2.0
    assert delta(errors, kind="conflict") == 1.0 and delta(errors, kind="action_failed") == 1.0
    assert delta(errors, kind="api_error") == 0.0 and value(after, errors, kind="unexpected") is not None
    assert delta(f"{metric_names.RECONCILE_SECONDS}_count") == 3.0
    assert delta(f"{metric_names.RECONCILE_SECONDS}_bucket", le="0.05") == 1.0


def test_deleted_or_deleting_objects_leave_no_series() -> None:
    metrics.observe(BODY)
    metrics.observe(
        {**BODY, "metadata": {"namespace": "ml", "name": "other"}, "status": {"phase": "Healthy"}}
    )
    assert names_of(scraped(), name="other")
    metrics.forget("ml", "churn")
    metrics.observe({**BODY, "metadata": {"namespace": "ml", "name": "other", "deletionTimestamp": "x"}})
    s = scraped()
    assert not names_of(s, namespace="ml")
    assert metrics.observed() == []


def test_odd_status_never_breaks_the_scrape() -> None:
    metrics.observe(
        {
            "metadata": {"namespace": "ml", "name": "odd"},
            "status": {
                "phase": 3,
                "conditions": "x",
                "weights": "x",
                "rollout": {"desiredWeight": True, "analysis": {"tallies": ["x", {}]}},
                "monitoring": {
                    "verdict": 7,
                    "lastRun": "yesterday",
                    "driftShare": "high",
                    "columns": [1, {"column": "c", "statistic": "big"}],
                    "predictionDrift": [],
                    "performance": [1],
                },
            },
        }
    )
    s = scraped()
    assert value(s, metric_names.PHASE, namespace="ml", name="odd", phase="Pending") == 0.0
    assert (
        value(s, metric_names.COLUMN_DRIFTED, namespace="ml", name="odd", model="", version="", column="c")
        == 0.0
    )
    assert metric_names.LAST_RUN not in names_of(s, name="odd")


def test_endpoint_serves_healthz_after_ready_and_metrics_in_both_formats() -> None:
    metrics.observe(BODY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def get(path: str, accept: str | None = None) -> tuple[int, str, str]:
        request = urllib.request.Request(base + path, headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read().decode()

    async def scenario() -> None:
        ready = asyncio.Event()
        runner = await endpoints.serve(port, ready, host="127.0.0.1")
        try:
            code, _, _ = await asyncio.to_thread(get, "/healthz")
            assert code == 503  # Kopf has not finished starting
            ready.set()
            code, _, body = await asyncio.to_thread(get, "/healthz")
            assert code == 200 and '"ok"' in body
            code, ctype, text = await asyncio.to_thread(get, "/metrics")
            assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
            assert value(parse(text), metric_names.PHASE, **OBJ, phase="Progressing") == 1.0
            accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            code, ctype, text = await asyncio.to_thread(get, "/metrics", accept)
            assert code == 200 and ctype.startswith("application/openmetrics-text")
            assert text.rstrip().endswith("# EOF")
            code, _, _ = await asyncio.to_thread(get, "/other")
            assert code == 404
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["phase", "modelName", "stableVersion", "weights", "rollout", "monitoring", "conditions", "canaryVersion"]
)


@settings(max_examples=100, deadline=None)
@given(
    status=st.dictionaries(
        KEYS, JSON | st.fixed_dictionaries({}, optional={"analysis": JSON, "driftShare": JSON})
    ),
    spec=JSON,
)
def test_any_status_renders_known_families_only_and_forget_removes_all(status: Any, spec: Any) -> None:
    metrics.observe({"metadata": {"namespace": "h", "name": "x"}, "spec": spec, "status": status})
    s = scraped()
    assert names_of(s, namespace="h") <= set(metric_names.PER_OBJECT)
    assert value(s, metric_names.PHASE, namespace="h", name="x", phase="Pending") in (0.0, 1.0)
    metrics.forget("h", "x")
    assert not names_of(scraped(), namespace="h")


def test_timed_tick_counts_failures_by_kind_and_not_cancelled_ticks() -> None:
    total, errors = f"{metric_names.RECONCILES}_total", f"{metric_names.RECONCILE_ERRORS}_total"
    before = scraped()

    def kind_of(e: Exception) -> str:
        return metric_names.ERROR_API if isinstance(e, KeyError) else metric_names.ERROR_UNEXPECTED

    with metrics.timed_tick(kind_of):
        pass
    with pytest.raises(KeyError), metrics.timed_tick(kind_of):
        raise KeyError("x")
    with pytest.raises(asyncio.CancelledError), metrics.timed_tick(kind_of):
        raise asyncio.CancelledError
    after = scraped()

    def delta(metric: str, /, **labels: str) -> float:
        return (value(after, metric, **labels) or 0.0) - (value(before, metric, **labels) or 0.0)

    assert delta(total, result="ok") == 1.0 and delta(total, result="error") == 1.0
    assert delta(errors, kind="api_error") == 1.0 and delta(errors, kind="unexpected") == 0.0
    assert delta(f"{metric_names.RECONCILE_SECONDS}_count") == 2.0
