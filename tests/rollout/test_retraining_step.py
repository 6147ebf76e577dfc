"""The retraining tick as a story: drift noticed, a Job started, a version registered, a rejected
candidate that does not loop, new evidence, a failing Job backed off and retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.loop import Retraining
from mlrollout.api.monitoring_status import ColumnDrift, MonitoringStatus
from mlrollout.api.retraining_status import RetrainingStatus
from mlrollout.api.status import Candidate, ModelDeploymentStatus, Phase, RolloutStatus
from mlrollout.api.training import TrainReport
from mlrollout.rollout import retraining as r
from mlrollout.rollout import triggers as t

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SPEC = Retraining.model_validate(
    {
        "triggers": [{"drift": {"cooldown": "1h", "minSamples": 100}}],
        "job": {"builtin": {"estimator": "logistic_regression", "target": "y"}, "datasetUri": "s3://b/t"},
    }
)


def drift_at(when: datetime, verdict: str = "Drift") -> MonitoringStatus:
    col = ColumnDrift(column="tenure", test="ks", statistic=0.4, p_value=1e-6, effect_size=0.4, drifted=True)
    return MonitoringStatus(
        verdict=verdict, version="7", last_run=when, samples=800, drift_share=1.0, columns=[col]
    )


def healthy(mon: MonitoringStatus | None, **changes: object) -> ModelDeploymentStatus:
    fields: dict[str, object] = {"phase": Phase.HEALTHY, "stable_version": "7", "monitoring": mon, **changes}
    return ModelDeploymentStatus(**fields)  # type: ignore[arg-type]


def tick(
    status: ModelDeploymentStatus, state: RetrainingStatus | None, now: datetime, result: object = None
) -> r.RetrainStep:
    return r.step("churn", SPEC, status, state, result, CREATED, now)  # type: ignore[arg-type]


def test_the_whole_story() -> None:
    # 1. no drift: quiet, nothing to wake up for by time alone
    s = tick(healthy(drift_at(T0, "NoDrift")), None, T0)
    assert s.start is None and isinstance(s.verdict, t.Quiet) and s.requeue_after is None

    # 2. drift: a Job starts, with the reason on an Event
    mon = drift_at(T0 + timedelta(minutes=1))
    s = tick(healthy(mon), s.state, T0 + timedelta(minutes=2))
    assert s.start == r.StartTraining("churn-train-1", 1, "drift", s.start.reason if s.start else "", "7")
    assert s.state.state == "Training" and s.state.job == "churn-train-1"
    assert [e.reason for e in s.events] == ["RetrainingStarted"] and "tenure" in s.events[0].message

    # 3. the Job runs: nothing new starts, even though the drift verdict stands
    running = tick(healthy(mon), s.state, T0 + timedelta(minutes=3), JobRunning(job="churn-train-1"))
    assert (
        running.start is None and running.state == s.state and running.requeue_after == r.POLL_WHILE_TRAINING
    )

    # 4. it registers version 8: the next candidate
    report = TrainReport(outcome="registered", model_name="churn", version="8", metric="roc_auc", value=0.88)
    s = tick(healthy(mon), running.state, T0 + timedelta(minutes=10), report)
    assert s.registered == "8" and s.state.state == "Trained" and s.state.version == "8"
    assert s.events[0].reason == "Retrained" and "roc_auc 0.88" in s.events[0].message

    # 5. version 8 is rolled out (a candidate): the run acted on starts nothing; a newer one waits
    candidate = RolloutStatus(candidate=Candidate(model_name="churn", version="8"))
    q = tick(healthy(mon, phase=Phase.PROGRESSING, rollout=candidate), s.state, T0 + timedelta(minutes=30))
    assert q.start is None and isinstance(q.verdict, t.Quiet) and q.verdict.reasons[0].signal == "evidence"
    newer_run = healthy(drift_at(T0 + timedelta(hours=2)), phase=Phase.PROGRESSING, rollout=candidate)
    w = tick(newer_run, s.state, T0 + timedelta(hours=2, minutes=1))
    assert w.start is None and isinstance(w.verdict, t.Wait)
    assert w.verdict.blocked_by == "the rollout of version 8 is in progress"

    # 6. version 8 fails its gate: stable 7 serves, the run acted on does not retrain again
    rejected = healthy(mon, rollout=RolloutStatus(aborted_version="8", last_outcome="rejected"))
    q = tick(rejected, s.state, T0 + timedelta(hours=3))
    assert q.start is None and isinstance(q.verdict, t.Quiet)

    # 7. a newer monitor run still sees drift: attempt 2
    newer = healthy(drift_at(T0 + timedelta(hours=4)), rollout=RolloutStatus(aborted_version="8"))
    s = tick(newer, q.state, T0 + timedelta(hours=4, minutes=1))
    assert s.start is not None and s.start.job == "churn-train-2"

    # 8. that Job fails: a Warning naming the problem, stable untouched, a backoff
    failed = JobCouldNotRun(job="churn-train-2", reason="BadInput", message="dataset s3://b/t does not exist")
    now = T0 + timedelta(hours=4, minutes=5)
    s = tick(newer, s.state, now, failed)
    assert s.state.state == "Failed" and s.state.failures == 1 and s.start is None
    assert s.events[0].type == "Warning" and "does not exist" in s.events[0].message
    assert s.requeue_after == timedelta(minutes=1)

    # 9. within the backoff it waits; after it, the same trigger is retried as attempt 3
    w = tick(newer, s.state, now + timedelta(seconds=30))
    assert w.start is None and isinstance(w.verdict, t.Wait)
    s = tick(newer, s.state, now + timedelta(minutes=1, seconds=1))
    assert s.start is not None and s.start.job == "churn-train-3" and s.start.trigger == "drift"


def test_a_job_that_vanished_counts_as_a_failure() -> None:
    state = RetrainingStatus(
        state="Training", job="churn-train-4", attempt=4, trigger="schedule", started_at=T0
    )
    s = tick(healthy(None), state, T0 + timedelta(minutes=1), None)
    assert s.state.state == "Failed" and "churn-train-4 is gone" in (s.state.message or "")


def test_a_trainer_error_report_is_a_failure_and_after_max_failures_it_waits_for_evidence() -> None:
    state = RetrainingStatus(
        state="Training", job="churn-train-5", attempt=5, trigger="drift", failures=2, started_at=T0
    )
    bad = TrainReport(outcome="error", model_name="churn", reason="no trial completed")
    s = tick(healthy(drift_at(T0 - timedelta(minutes=1))), state, T0 + timedelta(minutes=1), bad)
    assert s.state.failures == 3 and "waiting for new evidence" in s.events[0].message


def test_benign_drift_is_said_once_in_status_and_an_event() -> None:
    spec = Retraining.model_validate(
        {
            "triggers": [{"drift": {"minSamples": 100, "confirm": {"predictionDrift": True}}}],
            "job": {"builtin": {"estimator": "logistic_regression", "target": "y"}, "datasetUri": "s3://b/t"},
        }
    )
    steady = ColumnDrift(column="prediction", test="ks", statistic=0.01, p_value=0.8, drifted=False)
    mon = drift_at(T0).model_copy(update={"prediction_drift": steady})
    first = r.step("churn", spec, healthy(mon), None, None, CREATED, T0 + timedelta(minutes=1))
    assert first.start is None and isinstance(first.verdict, t.Quiet)
    assert first.state.benign_drift is not None and "tenure" in first.state.benign_drift
    assert "predictions did not drift" in first.state.benign_drift
    assert [e.reason for e in first.events] == ["RetrainingNotNeeded"]
    assert "not started" in first.events[0].message and "looks benign" in first.events[0].message
    again = r.step("churn", spec, healthy(mon), first.state, None, CREATED, T0 + timedelta(minutes=2))
    assert again.state == first.state and again.events == ()  # the same verdict is not said twice
