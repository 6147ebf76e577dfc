"""Retraining triggers: a table of situations, and the properties that keep rollback and retraining apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrollout.api.loop import Retraining
from mlrollout.api.monitoring_status import ColumnDrift, MonitoringStatus
from mlrollout.api.retraining_status import RetrainingStatus
from mlrollout.api.status import Candidate, HistoryEntry, ModelDeploymentStatus, Phase, RolloutStatus
from mlrollout.rollout import triggers as t

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
RUN = NOW - timedelta(minutes=5)  # the monitor's last run
JOB = {"builtin": {"estimator": "logistic_regression", "target": "churned"}, "datasetUri": "s3://b/train"}

DRIFT = {"drift": {"cooldown": "24h", "minSamples": 500}}
DRIFT_PRED = {"drift": {"minSamples": 500, "confirm": {"predictionDrift": True}}}
DRIFT_PERF = {"drift": {"minSamples": 500, "confirm": {"performance": {"metric": "roc_auc", "below": 0.8}}}}
PERF = {"performance": {"metric": "roc_auc", "below": 0.8, "minSamples": 100}}
PERF_ABOVE = {"performance": {"metric": "rmse", "above": 2.0}}
DAILY = {"schedule": {"cron": "0 3 * * *"}}


def spec(*trigger_list: dict[str, Any]) -> Retraining:
    return Retraining.model_validate({"triggers": list(trigger_list), "job": JOB})


def column(name: str, drifted: bool, p: float = 0.001) -> ColumnDrift:
    return ColumnDrift(column=name, test="ks", statistic=0.3, p_value=p, effect_size=0.3, drifted=drifted)


def monitoring(**changes: Any) -> MonitoringStatus:
    base: dict[str, Any] = {
        "verdict": "Drift",
        "version": "7",
        "last_run": RUN,
        "samples": 1000,
        "drift_share": 0.5,
        "columns": [column("tenure", True), column("monthly_charges", False, 0.4)],
        "prediction_drift": column("prediction", False, 0.6),
        "performance": {"roc_auc": 0.86, "rmse": 1.0},
        "labelled_samples": 400,
    }
    return MonitoringStatus(**{**base, **changes})


def status(
    phase: Phase = Phase.HEALTHY, mon: MonitoringStatus | None = None, **changes: Any
) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(
        phase=phase, stable_version="7", model_name="churn", monitoring=mon, **changes
    )


def state(**changes: Any) -> RetrainingStatus:
    return RetrainingStatus(**changes)


@dataclass
class Case:
    name: str
    triggers: tuple[dict[str, Any], ...]
    status: ModelDeploymentStatus
    state: RetrainingStatus | None = None
    now: datetime = NOW
    expect: type = t.Quiet
    signal: str | None = None  # the reason's signal (fired trigger, or the first trigger's quiet reason)
    value: Any = None
    threshold: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


CANDIDATE = RolloutStatus(candidate=Candidate(model_name="churn", version="8"), strategy="canary")

CASES = [
    Case(
        "drift on a healthy model retrains",
        (DRIFT,),
        status(mon=monitoring()),
        expect=t.Retrain,
        signal="drift",
        value=0.5,
    ),
    Case("no monitor run yet", (DRIFT,), status(), signal="monitor"),
    Case(
        "no drift",
        (DRIFT,),
        status(mon=monitoring(verdict="NoDrift")),
        signal="drift",
        value="NoDrift",
        threshold="Drift",
    ),
    Case("insufficient window", (DRIFT,), status(mon=monitoring(verdict="Insufficient")), signal="drift"),
    Case(
        "too few rows",
        (DRIFT,),
        status(mon=monitoring(samples=120)),
        signal="samples",
        value=120,
        threshold=500,
    ),
    Case(
        "cooldown after the last training",
        (DRIFT,),
        status(mon=monitoring()),
        state(started_at=NOW - timedelta(hours=2), evidence_at=RUN - timedelta(hours=1)),
        signal="cooldown",
        value=7200.0,
        threshold=86400.0,
        extra={"next_check": NOW + timedelta(hours=22)},
    ),
    Case(
        "cooldown over",
        (DRIFT,),
        status(mon=monitoring()),
        state(started_at=NOW - timedelta(hours=25), evidence_at=RUN - timedelta(hours=1)),
        expect=t.Retrain,
        signal="drift",
    ),
    Case(
        "verdict about another version",
        (DRIFT,),
        status(mon=monitoring(version="6")),
        signal="version",
        value="6",
        threshold="7",
    ),
    Case(
        "evidence already acted on",
        (DRIFT,),
        status(mon=monitoring()),
        state(evidence_at=RUN, started_at=NOW - timedelta(days=3)),
        signal="evidence",
    ),
    Case("benign drift: predictions steady", (DRIFT_PRED,), status(mon=monitoring()), signal="benignDrift"),
    Case(
        "drift confirmed by predictions",
        (DRIFT_PRED,),
        status(mon=monitoring(prediction_drift=column("prediction", True))),
        expect=t.Retrain,
        signal="drift",
    ),
    Case("benign drift: accuracy holds", (DRIFT_PERF,), status(mon=monitoring()), signal="benignDrift"),
    Case(
        "drift confirmed by an accuracy drop",
        (DRIFT_PERF,),
        status(mon=monitoring(performance={"roc_auc": 0.74})),
        expect=t.Retrain,
        signal="drift",
    ),
    Case(
        "accuracy drop on too few labels does not confirm",
        (DRIFT_PERF,),
        status(mon=monitoring(performance={"roc_auc": 0.74}, labelled_samples=20)),
        signal="benignDrift",
    ),
    Case(
        "performance below its floor retrains",
        (PERF,),
        status(mon=monitoring(verdict="NoDrift", performance={"roc_auc": 0.74})),
        expect=t.Retrain,
        signal="performance:roc_auc",
        value=0.74,
        threshold=0.8,
    ),
    Case(
        "performance above its floor",
        (PERF,),
        status(mon=monitoring()),
        signal="performance:roc_auc",
        value=0.86,
        threshold=0.8,
    ),
    Case(
        "performance not measured",
        (PERF,),
        status(mon=monitoring(performance=None)),
        signal="performance:roc_auc",
    ),
    Case(
        "error metric above its ceiling retrains",
        (PERF_ABOVE,),
        status(mon=monitoring(performance={"rmse": 2.5})),
        expect=t.Retrain,
        signal="performance:rmse",
        value=2.5,
        threshold=2.0,
    ),
    Case(
        "schedule due since the last training",
        (DAILY,),
        status(),
        state(started_at=NOW - timedelta(days=1)),
        expect=t.Retrain,
        signal="schedule",
        value="2026-01-10T03:00:00+00:00",
        threshold="0 3 * * *",
    ),
    Case(
        "schedule not due again",
        (DAILY,),
        status(),
        state(started_at=datetime(2026, 1, 10, 3, 1, tzinfo=UTC)),
        signal="schedule",
        extra={"next_check": datetime(2026, 1, 11, 3, 0, tzinfo=UTC)},
    ),
    Case(
        "a new resource waits for its first slot",
        (DAILY,),
        status(),
        now=datetime(2026, 1, 1, 2, 0, tzinfo=UTC),
        signal="schedule",
    ),
    Case(
        "drift while a training runs waits",
        (DRIFT,),
        status(Phase.RETRAINING, monitoring()),
        state(state="Training", job="churn-train-1", started_at=NOW - timedelta(days=2)),
        expect=t.Wait,
        signal="drift",
        extra={"blocked_by": "training Job churn-train-1 is running"},
    ),
    Case(
        "drift during a rollout waits",
        (DRIFT,),
        status(Phase.PROGRESSING, monitoring(), rollout=CANDIDATE),
        expect=t.Wait,
        extra={"blocked_by": "the rollout of version 8 is in progress"},
    ),
    Case(
        "drift while serving is degraded waits (rollback's business)",
        (DRIFT,),
        status(Phase.DEGRADED, monitoring()),
        expect=t.Wait,
    ),
    Case("drift while paused waits", (DRIFT,), status(Phase.PAUSED, monitoring()), expect=t.Wait),
    Case(
        "schedule while validating waits",
        (DAILY,),
        status(Phase.VALIDATING),
        expect=t.Wait,
        signal="schedule",
    ),
    Case(
        "drift after a rollback, on stable, with new evidence retrains",
        (DRIFT,),
        status(Phase.ROLLED_BACK, monitoring(), rollout=RolloutStatus(aborted_version="8")),
        expect=t.Retrain,
    ),
    Case(
        "a retrained candidate rejected by its gate does not loop",
        (DRIFT,),
        status(
            Phase.HEALTHY, monitoring(), rollout=RolloutStatus(aborted_version="8", last_outcome="rejected")
        ),
        state(state="Trained", version="8", evidence_at=RUN, started_at=NOW - timedelta(days=2)),
        signal="evidence",
    ),
    Case(
        "... until a newer monitor run still sees drift",
        (DRIFT,),
        status(Phase.HEALTHY, monitoring(last_run=NOW), rollout=RolloutStatus(aborted_version="8")),
        state(state="Trained", version="8", evidence_at=RUN, started_at=NOW - timedelta(days=2)),
        expect=t.Retrain,
    ),
    Case(
        "a failed training is retried after its backoff",
        (DRIFT,),
        status(mon=monitoring()),
        state(
            state="Failed",
            trigger="drift",
            failures=1,
            evidence_at=RUN,
            next_attempt_at=NOW - timedelta(seconds=1),
        ),
        expect=t.Retrain,
        signal="failures",
        value=1,
        threshold=t.MAX_FAILURES,
    ),
    Case(
        "a failed training waits out its backoff",
        (DRIFT,),
        status(mon=monitoring()),
        state(
            state="Failed",
            trigger="drift",
            failures=2,
            evidence_at=RUN,
            next_attempt_at=NOW + timedelta(minutes=2),
        ),
        expect=t.Wait,
        extra={"retry_at": NOW + timedelta(minutes=2)},
    ),
    Case(
        "after MAX_FAILURES it waits for new evidence",
        (DRIFT,),
        status(mon=monitoring()),
        state(
            state="Failed",
            trigger="drift",
            failures=3,
            evidence_at=RUN,
            next_attempt_at=NOW - timedelta(hours=1),
        ),
        signal="evidence",
    ),
    Case(
        "the first trigger that fires wins; quiet ones are skipped",
        (DAILY, PERF, {"drift": {"cooldown": "1h"}}),
        status(mon=monitoring()),
        state(started_at=datetime(2026, 1, 10, 3, 30, tzinfo=UTC)),
        expect=t.Retrain,
        signal="drift",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_trigger_table(case: Case) -> None:
    verdict = t.evaluate(spec(*case.triggers), case.status, case.state, CREATED, case.now)
    assert type(verdict) is case.expect, verdict
    reason = verdict.reasons[0] if isinstance(verdict, t.Quiet) else verdict.reason
    if case.signal is not None:
        assert reason.signal == case.signal, reason
    if case.value is not None:
        assert reason.value == case.value, reason
    if case.threshold is not None:
        assert reason.threshold == case.threshold, reason
    for name, expected in case.extra.items():
        assert getattr(verdict, name) == expected, verdict
    assert verdict.message  # something readable for status and Events


def test_retrain_records_the_evidence_and_the_reason_is_readable() -> None:
    verdict = t.evaluate(spec(DRIFT), status(mon=monitoring()), None, CREATED, NOW)
    assert isinstance(verdict, t.Retrain)
    assert verdict.evidence_at == RUN
    assert (
        "tenure" in verdict.message and "1000 rows" in verdict.message and "minSamples 500" in verdict.message
    )


def test_no_retraining_spec_is_quiet() -> None:
    assert isinstance(t.evaluate(None, status(mon=monitoring()), None, CREATED, NOW), t.Quiet)


def test_state_transitions() -> None:
    verdict = t.evaluate(spec(DRIFT), status(mon=monitoring()), None, CREATED, NOW)
    assert isinstance(verdict, t.Retrain)
    running = t.started(None, verdict, "churn-train-1", NOW)
    assert (running.state, running.attempt, running.job, running.evidence_at) == (
        "Training",
        1,
        "churn-train-1",
        RUN,
    )
    assert running.trigger == "drift" and running.reason and "drift" in running.reason
    done = t.succeeded(running, "8", NOW + timedelta(minutes=3))
    assert (done.state, done.version, done.failures) == ("Trained", "8", 0)
    broken = t.failed(running, "dataset s3://b/train does not exist", NOW)
    assert (broken.state, broken.failures, broken.next_attempt_at) == (
        "Failed",
        1,
        NOW + timedelta(minutes=1),
    )
    again = t.failed(broken, "still missing", NOW)
    assert again.next_attempt_at == NOW + timedelta(minutes=2)


@given(st.integers(0, 100))
def test_retry_delay_grows_and_is_capped(failures: int) -> None:
    assert timedelta(minutes=1) <= t.retry_delay(failures) <= t.RETRY_MAX
    assert t.retry_delay(failures + 1) >= t.retry_delay(failures)


# -- properties ----------------------------------------------------------------------------------------

_PHASES = st.sampled_from(list(Phase))
_VERSIONS = st.sampled_from(["6", "7", "8", "9"])
_OUTCOMES = st.sampled_from(
    ["rolled_back: error-rate 0.2 > 0.01", "rejected: roc_auc 0.7 < 0.84", "aborted", None]
)
_CAUSES = st.sampled_from(["initial", "canary", "undo", "rollback", "retrain:drift"])
_QUIET_MONITORING = st.builds(
    monitoring,
    verdict=st.sampled_from(["NoDrift", "Insufficient", "Error"]),
    performance=st.fixed_dictionaries({"roc_auc": st.floats(0.8, 1.0), "rmse": st.floats(0.0, 2.0)}),
    last_run=st.datetimes(CREATED.replace(tzinfo=None), NOW.replace(tzinfo=None)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)
_ALL_TRIGGERS = (DRIFT, DRIFT_PRED, DRIFT_PERF, PERF, PERF_ABOVE)


@st.composite
def _rollout_outcome(draw: st.DrawFn) -> dict[str, Any]:
    """Everything a rollback leaves behind: phase, aborted candidate, outcome text, history causes."""
    history = [
        HistoryEntry(version=draw(_VERSIONS), promoted_at=CREATED + timedelta(days=i), cause=draw(_CAUSES))
        for i in range(draw(st.integers(0, 4)))
    ]
    return {
        "rollout": RolloutStatus(aborted_version=draw(_VERSIONS), last_outcome=draw(_OUTCOMES)),
        "history": history,
    }


@settings(max_examples=150, deadline=None)
@given(_PHASES, _QUIET_MONITORING, _rollout_outcome(), st.sampled_from(_ALL_TRIGGERS))
def test_rollback_never_triggers_retraining(
    phase: Phase, mon: MonitoringStatus, outcome: dict[str, Any], trigger: dict[str, Any]
) -> None:
    """Whatever a rollback left behind, without a drift or performance signal nothing retrains."""
    verdict = t.evaluate(spec(trigger), status(phase, mon, **outcome), None, CREATED, NOW)
    assert isinstance(verdict, t.Quiet), verdict


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([Phase.HEALTHY, Phase.ROLLED_BACK]),
    st.builds(monitoring, verdict=st.sampled_from(["Drift", "NoDrift"]), samples=st.integers(0, 5000)),
    _rollout_outcome(),
    _rollout_outcome(),
    st.sampled_from((*_ALL_TRIGGERS, DAILY)),
)
def test_the_verdict_ignores_rollout_outcomes(
    phase: Phase,
    mon: MonitoringStatus,
    first: dict[str, Any],
    second: dict[str, Any],
    trigger: dict[str, Any],
) -> None:
    """Rollout outcomes (aborted versions, outcome text, history causes) are not a retraining signal."""
    a = t.evaluate(spec(trigger), status(phase, mon, **first), None, CREATED, NOW)
    b = t.evaluate(spec(trigger), status(phase, mon, **second), None, CREATED, NOW)
    assert a == b


@settings(max_examples=100, deadline=None)
@given(
    st.integers(500, 100_000),
    st.floats(0.01, 1.0),
    st.lists(st.booleans(), min_size=1, max_size=6).filter(any),
)
def test_drift_on_a_healthy_fully_rolled_out_model_retrains_never_rolls_back(
    samples: int, share: float, drifted: list[bool]
) -> None:
    mon = monitoring(
        samples=samples,
        drift_share=share,
        columns=[column(f"c{i}", d) for i, d in enumerate(drifted)],
    )
    verdict = t.evaluate(spec(DRIFT), status(Phase.HEALTHY, mon), None, CREATED, NOW)
    assert isinstance(verdict, t.Retrain), verdict
    assert verdict.trigger == "drift"
    # the only verdicts there are: retrain, wait, quiet; a rollback is not something triggers can ask for
    assert set(t.Verdict.__args__) == {t.Retrain, t.Wait, t.Quiet}  # type: ignore[attr-defined]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from((*_ALL_TRIGGERS, DAILY)),
    st.builds(monitoring, verdict=st.just("Drift"), performance=st.just({"roc_auc": 0.5, "rmse": 9.0})),
    st.booleans(),
    st.integers(0, 72),
)
def test_never_a_second_training(
    trigger: dict[str, Any], mon: MonitoringStatus, training: bool, hours: int
) -> None:
    """While a training or a rollout runs, a firing trigger waits."""
    if training:
        current = status(Phase.RETRAINING, mon)
        st_ = state(state="Training", job="churn-train-3", attempt=3, started_at=NOW - timedelta(days=5))
    else:
        current = status(Phase.PROGRESSING, mon, rollout=CANDIDATE)
        st_ = state(state="Trained", version="8", attempt=3, started_at=NOW - timedelta(days=5))
    verdict = t.evaluate(spec(trigger), current, st_, CREATED, NOW + timedelta(hours=hours))
    assert not isinstance(verdict, t.Retrain), verdict


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(_ALL_TRIGGERS), st.integers(0, 24 * 30))
def test_evidence_is_used_once(trigger: dict[str, Any], hours_later: int) -> None:
    """After a training acted on a monitor run, the same run never starts another (no retrain loop)."""
    mon = monitoring(prediction_drift=column("prediction", True), performance={"roc_auc": 0.6, "rmse": 5.0})
    first = t.evaluate(spec(trigger), status(mon=mon), None, CREATED, NOW)
    assert isinstance(first, t.Retrain)
    record = t.succeeded(t.started(None, first, "churn-train-1", NOW), "8", NOW + timedelta(minutes=5))
    # the candidate was rejected (or rolled back): stable 7 serves, the monitor has not run again
    after = status(Phase.HEALTHY, mon, rollout=RolloutStatus(aborted_version="8"))
    verdict = t.evaluate(spec(trigger), after, record, CREATED, NOW + timedelta(hours=hours_later))
    assert isinstance(verdict, t.Quiet), verdict
