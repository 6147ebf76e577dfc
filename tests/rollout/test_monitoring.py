"""The monitor in the pure core: its CronJob follows stable; its verdict becomes the Drift condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api import conditions as c
from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase, RolloutStatus
from mlrollout.rollout import monitoring
from mlrollout.rollout.actions import ApplyMonitor, DeleteMonitor, EmitEvent
from mlrollout.rollout.decision import decide, terminate
from mlrollout.rollout.observed import Observed, ResolvedModel, TrackState

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MONITORING = {"inferenceLogUri": "s3://logs", "referenceUri": "s3://data/ref.parquet"}
READY = TrackState(
    version="7", desired_replicas=1, available_replicas=1, updated_replicas=1, observed_generation=1
)


def spec(monitoring_: dict[str, Any] | None = MONITORING) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1"},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    if monitoring_ is not None:
        body["monitoring"] = monitoring_
    return ModelDeploymentSpec.model_validate(body)


def healthy(**monitored: Any) -> ModelDeploymentStatus:
    m = MonitoringStatus.model_validate(monitored) if monitored else None
    return ModelDeploymentStatus(phase=Phase.HEALTHY, stable_version="7", model_name="churn", monitoring=m)


def observed(model: str = "7", present: bool = False, **kw: Any) -> Observed:
    return Observed(
        generation=1,
        model=ResolvedModel("churn", model),
        tracks={"stable": READY},
        service_present=True,
        monitor_present=present,
        **kw,
    )


def monitor_actions(actions: tuple[Any, ...]) -> list[Any]:
    return [a for a in actions if isinstance(a, ApplyMonitor | DeleteMonitor)]


def drift(status: ModelDeploymentStatus) -> tuple[str, str, str]:
    found = c.find(status.conditions, c.DRIFT)
    assert found is not None
    return found.status, found.reason, found.message


def events(actions: tuple[Any, ...]) -> list[tuple[str, str]]:
    return [(a.type, a.reason) for a in actions if isinstance(a, EmitEvent)]


RUN = {"lastRun": "2026-11-23T08:00:00Z", "version": "7", "samples": 900}
COLUMNS = [
    {"column": "age", "test": "ks", "statistic": 0.4, "pValue": 1e-9, "effectSize": 0.5, "drifted": True},
    {
        "column": "plan",
        "test": "chi2_homogeneity",
        "statistic": 1.0,
        "pValue": 0.3,
        "effectSize": 0.0,
        "drifted": False,
    },
]


@pytest.mark.parametrize(
    ("spec_", "present", "want"),
    [
        (spec(), False, [ApplyMonitor("churn", "7")]),
        (spec(), True, [ApplyMonitor("churn", "7")]),
        (spec(None), True, [DeleteMonitor()]),
        (spec(None), False, []),
        (spec({"referenceUri": "s3://r"}), True, [DeleteMonitor()]),  # no log: nothing to read
    ],
)
def test_cronjob_follows_spec_monitoring(spec_: ModelDeploymentSpec, present: bool, want: list[Any]) -> None:
    assert monitor_actions(decide(spec_, healthy(), observed(present=present), NOW).actions) == want


def test_no_cronjob_before_a_version_is_pinned_and_none_while_paused() -> None:
    pending = ModelDeploymentStatus()
    first = decide(spec(), pending, observed(), NOW)
    # the first tick pins 7 and asks for its monitor with it
    assert monitor_actions(first.actions) == [ApplyMonitor("churn", "7")]
    paused = decide(spec(None), healthy(), observed(present=True, paused=True), NOW)
    assert monitor_actions(paused.actions) == []


def test_promotion_moves_the_monitor_to_the_new_stable() -> None:
    status = healthy().model_copy(update={"rollout": RolloutStatus()})
    request = {"id": "r1", "action": "promote-full"}
    from mlrollout.rollout.observed import ManualRequest

    candidate = decide(spec(), status, observed(model="8"), NOW)
    assert candidate.status.rollout is not None and candidate.status.rollout.candidate is not None
    promoted = decide(spec(), candidate.status, observed(model="8", request=ManualRequest(**request)), NOW)
    assert promoted.status.stable_version == "8"
    assert monitor_actions(promoted.actions) == [ApplyMonitor("churn", "8")]


def test_delete_removes_the_monitor_and_waits_for_it() -> None:
    gone = terminate(healthy(), Observed(generation=1, model=None, deleting=True, monitor_present=True), NOW)
    assert DeleteMonitor() in gone.actions and gone.requeue_after is not None
    done = terminate(healthy(), Observed(generation=1, model=None, deleting=True), NOW)
    assert DeleteMonitor() not in done.actions and done.requeue_after is None


@pytest.mark.parametrize(
    ("monitored", "want"),
    [
        ({}, ("Unknown", "AwaitingFirstRun")),
        ({**RUN, "verdict": "Drift", "driftShare": 0.5, "columns": COLUMNS}, ("True", "DriftDetected")),
        ({**RUN, "verdict": "NoDrift", "driftShare": 0.0}, ("False", "NoDrift")),
        (
            {
                **RUN,
                "verdict": "Insufficient",
                "reason": "InsufficientData",
                "message": "too few rows: 12 < 200",
            },
            ("Unknown", "InsufficientData"),
        ),
        # a missing reference keeps the previous verdict in status.monitoring, never drift here
        (
            {
                **RUN,
                "verdict": "Drift",
                "reason": "NoReference",
                "message": "not found: s3://data/ref.parquet",
            },
            ("Unknown", "NoReference"),
        ),
        ({**RUN, "version": "6", "verdict": "Drift"}, ("Unknown", "AwaitingFirstRun")),  # about the old one
    ],
)
def test_condition_from_status_monitoring(monitored: dict[str, Any], want: tuple[str, str]) -> None:
    decision = decide(spec(), healthy(**monitored), observed(present=True), NOW)
    assert drift(decision.status)[:2] == want


def test_drift_message_names_columns_and_figures() -> None:
    monitored = {
        **RUN,
        "verdict": "Drift",
        "driftShare": 0.5,
        "columns": COLUMNS,
        "performance": {"accuracy": 0.81},
        "labelledSamples": 300,
    }
    _, _, message = drift(decide(spec(), healthy(**monitored), observed(present=True), NOW).status)
    assert "age (ks p=1e-09, effect 0.5)" in message and "plan" not in message
    assert "accuracy=0.81 over 300 labelled rows" in message


def test_no_log_configured_is_a_condition_not_a_cronjob() -> None:
    decision = decide(spec({"referenceUri": "s3://r"}), healthy(), observed(), NOW)
    assert drift(decision.status)[:2] == ("Unknown", "NoInferenceLog")


def test_an_event_on_every_change_of_verdict_and_only_then() -> None:
    s, seen = healthy(), []
    for monitored, expected in [
        ({}, []),
        ({**RUN, "verdict": "NoDrift", "driftShare": 0.0}, [("Normal", "NoDrift")]),
        ({**RUN, "verdict": "NoDrift", "driftShare": 0.0, "lastRun": "2026-11-23T09:00:00Z"}, []),
        ({**RUN, "verdict": "Drift", "driftShare": 0.5, "columns": COLUMNS}, [("Warning", "DriftDetected")]),
        ({**RUN, "verdict": "Drift", "driftShare": 0.5, "columns": COLUMNS}, []),
        (
            {**RUN, "verdict": "Drift", "reason": "StoreUnreachable", "message": "cannot list"},
            [("Warning", "StoreUnreachable")],
        ),
        ({**RUN, "verdict": "NoDrift", "driftShare": 0.0}, [("Normal", "NoDrift")]),
    ]:
        m = MonitoringStatus.model_validate(monitored) if monitored else None
        decision = decide(spec(), s.model_copy(update={"monitoring": m}), observed(present=True), NOW)
        got = [e for e in events(decision.actions) if e[1] not in ("Healthy",)]
        assert got == expected, monitored
        seen += got
        s = decision.status
    assert len(seen) == 4


def test_monitoring_removed_removes_the_condition() -> None:
    with_condition = decide(spec(), healthy(), observed(), NOW).status
    assert c.find(with_condition.conditions, c.DRIFT) is not None
    without = decide(spec(None), with_condition, observed(present=True), NOW + timedelta(seconds=5))
    assert c.find(without.status.conditions, c.DRIFT) is None


def test_the_operator_never_writes_status_monitoring() -> None:
    monitored = healthy(**RUN, verdict="Drift", driftShare=0.5, columns=COLUMNS)
    decision = decide(spec(), monitored, observed(present=True), NOW)
    assert decision.status.monitoring == monitored.monitoring


@given(
    verdict=st.sampled_from(["NoDrift", "Drift", "Insufficient", "Error", None]),
    reason=st.sampled_from([None, "NoReference", "BadWindow", "InsufficientData", "StoreUnreachable"]),
)
def test_only_a_drift_verdict_without_a_problem_is_drift(verdict: str | None, reason: str | None) -> None:
    monitored = {**RUN, "verdict": verdict, "reason": reason}
    flag, why, _ = monitoring.reading(spec(), healthy(**monitored))
    assert (flag == "True") == (verdict == "Drift" and reason in (None, "InsufficientData"))
    if reason not in (None, "InsufficientData"):
        assert why == reason


def test_performance_outside_its_bounds_is_said() -> None:
    monitored = {**RUN, "verdict": "NoDrift", "performance": {"accuracy": 0.62}, "labelledSamples": 300}
    bounded = spec({**MONITORING, "performance": {"metric": "accuracy", "min": 0.8}})
    _, reason, message = drift(decide(bounded, healthy(**monitored), observed(present=True), NOW).status)
    assert reason == "NoDrift" and "accuracy 0.62 below min 0.8" in message
    fine = {**monitored, "performance": {"accuracy": 0.9}}
    _, _, message = drift(decide(bounded, healthy(**fine), observed(present=True), NOW).status)
    assert "below" not in message
