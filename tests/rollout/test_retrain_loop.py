"""The closed loop on the fake cluster: drift on a healthy model starts a training Job, the version it
registers is gated and rolled out by canary and promoted with cause retrain:drift; a rejected retrained
candidate does not loop, a rollback never trains, and autoDeploy false waits for `approve`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_cluster import FakeCluster

from mlrollout.adapters.k8s.jobs import gate_job_name
from mlrollout.api import conditions as c
from mlrollout.api.gate import GateCheck, GateReport
from mlrollout.api.jobs import JobCouldNotRun
from mlrollout.api.monitoring_status import ColumnDrift, MonitoringStatus
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Phase
from mlrollout.api.training import TrainReport
from mlrollout.rollout.actions import Action, ApplyGateJob, ApplyTrainJob
from mlrollout.rollout.gate import GateResult
from mlrollout.rollout.observed import ManualRequest, Observed
from mlrollout.rollout.phases import can_transition

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
AUC = GateCheck(name="metric:roc_auc", verdict="passed", value=0.88, threshold=0.84)
AUC_LOW = GateCheck(name="metric:roc_auc", verdict="failed", value=0.71, threshold=0.84)


def spec(auto_deploy: bool = True, validation: bool = True) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 4},
        "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "10s"}}]}},
        "monitoring": {"inferenceLogUri": "file:///var/log/md", "drift": {}},
        "retraining": {
            "triggers": [{"drift": {"cooldown": "1m", "minSamples": 100}}],
            "job": {
                "builtin": {"estimator": "logistic_regression", "target": "churned"},
                "datasetUri": "s3://b/train.parquet",
            },
            "autoDeploy": auto_deploy,
        },
    }
    if validation:
        body["validation"] = {
            "dataset": {"uri": "s3://b/holdout.parquet", "target": "churned"},
            "metrics": [{"name": "roc_auc", "min": 0.84}],
        }
    return ModelDeploymentSpec.model_validate(body)


def registered(version: str) -> TrainReport:
    return TrainReport(
        outcome="registered", model_name="churn", version=version, metric="roc_auc", value=0.88
    )


@dataclass
class LoopCluster(FakeCluster):
    """Gate Jobs finish at once with `gate_passes[version]`; every phase change is checked against the
    transition table (decide() would raise IllegalTransition; this says which one)."""

    gate_passes: dict[str, bool] = field(default_factory=dict)
    gates: dict[str, GateResult] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)

    def observed(self) -> Observed:
        rollout = self.status.rollout
        job = rollout.gate.job if rollout and rollout.gate else None
        return replace(super().observed(), gate=self.gates.get(job) if job else None)

    def act(self, action: Action) -> None:
        if isinstance(action, ApplyGateJob):
            passed = self.gate_passes.get(action.version, True)
            self.gates[gate_job_name(self.name, action.version, action.attempt)] = GateReport(
                outcome="passed" if passed else "failed",
                model_name="churn",
                version=action.version,
                checks=[AUC if passed else AUC_LOW],
            )
        else:
            super().act(action)

    def run(self, ticks: int, step: timedelta = timedelta(seconds=10)) -> None:
        for _ in range(ticks):
            before = self.status.phase
            self.tick()
            assert can_transition(before, self.status.phase), (before, self.status.phase)
            self.phases.append(self.status.phase)
            self.now += step

    def drift(self, minutes_from_now: int = 0) -> None:
        """The monitor Job writes a drift verdict about stable into status.monitoring."""
        col = ColumnDrift(
            column="tenure", test="ks", statistic=0.4, p_value=1e-6, effect_size=0.4, drifted=True
        )
        monitoring = MonitoringStatus(
            verdict="Drift",
            version=self.status.stable_version,
            last_run=self.now + timedelta(minutes=minutes_from_now),
            samples=800,
            drift_share=1.0,
            columns=[col],
        )
        self.status = self.status.model_copy(update={"monitoring": monitoring})


def phase(cluster: FakeCluster) -> Phase:
    """Read afresh (mypy would keep an earlier comparison's narrowing across ticks)."""
    return cluster.status.phase


def healthy_cluster(**kw: Any) -> LoopCluster:
    cluster = LoopCluster(spec(**kw), "7", NOW, name="md", follow_alias=True)
    cluster.run(3)
    assert phase(cluster) == Phase.HEALTHY and cluster.status.stable_version == "7"
    assert not cluster.trainings
    return cluster


def test_drift_on_a_healthy_model_is_retrained_gated_canaried_and_promoted() -> None:
    cluster = healthy_cluster()
    cluster.train_outcomes = [registered("8")]
    cluster.drift()
    cluster.run(1)
    assert phase(cluster) == Phase.RETRAINING
    [job] = cluster.trainings
    assert (job.model_name, job.parent_version, job.attempt) == ("churn", "7", 1)
    assert job.trigger.startswith("drift: input drift on 1 column(s) (tenure)")
    started = [m for _, r, m in cluster.events if r == "RetrainingStarted"]
    assert started and "over 800 rows (minSamples 100)" in started[0]
    cluster.run(1)  # the Job registered version 8
    assert cluster.status.retraining and cluster.status.retraining.state == "Trained"
    assert cluster.status.retraining.version == "8" and "Retrained" in cluster.reasons()
    cluster.run(12)
    assert Phase.VALIDATING in cluster.phases and Phase.PROGRESSING in cluster.phases
    assert list(cluster.gates) == ["md-gate-8-1"]
    assert phase(cluster) == Phase.HEALTHY and cluster.status.stable_version == "8"
    assert cluster.alias_moves == ["8"]
    assert cluster.status.history[-1].version == "8" and cluster.status.history[-1].cause == "retrain:drift"
    assert len(cluster.trainings) == 1  # the drift verdict was about version 7: no second training


def test_a_rejected_retrained_candidate_leaves_stable_and_does_not_train_again_without_new_evidence() -> None:
    cluster = healthy_cluster()
    cluster.gate_passes = {"8": False, "9": True}
    cluster.train_outcomes = [registered("8"), registered("9")]
    cluster.drift()
    cluster.run(8)
    assert "GateFailed" in cluster.reasons() and cluster.status.stable_version == "7"
    assert set(cluster.tracks) == {"stable"} and not cluster.alias_moves
    assert phase(cluster) == Phase.HEALTHY and cluster.status.rollout
    assert cluster.status.rollout.candidate is None
    cluster.run(20, step=timedelta(minutes=1))  # past the cooldown, the same monitor run
    assert len(cluster.trainings) == 1
    cluster.drift()  # a newer monitor run: new evidence
    cluster.run(12)
    assert len(cluster.trainings) == 2 and cluster.status.stable_version == "9"
    assert cluster.status.history[-1].cause == "retrain:drift"


def test_a_rollback_never_starts_a_training() -> None:
    cluster = healthy_cluster()
    cluster.gate_passes = {"8": True}
    cluster.version = "8"  # a user's release
    cluster.run(2)
    assert phase(cluster) == Phase.PROGRESSING
    cluster.request = ManualRequest("abort-1", "abort")
    cluster.drift()
    cluster.run(10, step=timedelta(minutes=1))
    assert Phase.ROLLED_BACK in cluster.phases and phase(cluster) == Phase.ROLLED_BACK
    assert not cluster.trainings and "RetrainingStarted" not in cluster.reasons()
    assert cluster.status.stable_version == "7"


def test_no_training_during_a_rollout_it_waits_for_the_healthy_model() -> None:
    cluster = healthy_cluster()
    cluster.version = "8"  # a user's release, rolling out
    cluster.run(2)
    cluster.drift()
    cluster.run(1)
    assert phase(cluster) == Phase.PROGRESSING and not cluster.trainings


def test_auto_deploy_false_waits_for_approve_then_gates_and_rolls_out() -> None:
    cluster = healthy_cluster(auto_deploy=False)
    cluster.train_outcomes = [registered("8")]
    cluster.drift()
    cluster.run(6, step=timedelta(minutes=1))
    paused = c.find(cluster.status.conditions, c.PAUSED)
    assert paused is not None and (paused.status, paused.reason) == ("True", "AwaitingApproval")
    assert "kubectl mlrollout approve" in paused.message
    assert phase(cluster) == Phase.HEALTHY and not cluster.gates and set(cluster.tracks) == {"stable"}
    assert cluster.reasons().count("AwaitingApproval") == 1
    cluster.request = ManualRequest("approve-v8", "approve", "8")
    cluster.run(12)
    assert "RequestApplied" in cluster.reasons() and list(cluster.gates) == ["md-gate-8-1"]
    assert cluster.status.stable_version == "8" and cluster.status.history[-1].cause == "retrain:drift"


def test_approve_with_nothing_waiting_is_refused() -> None:
    cluster = healthy_cluster(auto_deploy=False)
    cluster.request = ManualRequest("approve-x", "approve")
    cluster.run(1)
    assert "RequestNotApplied" in cluster.reasons()
    request = c.find(cluster.status.conditions, "Request")
    assert request is not None and "no retrained candidate is waiting" in request.message


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("BadInput", "dataset s3://b/x does not exist"),  # the built-in trainer's report
        # a custom trainer that exits 0 and registers nothing (adapters.k8s.training's words)
        ("NoReport", "the training Job completed without reporting a registered version"),
        ("BackoffLimitExceeded", "pod md-train-1-x exited with code 137"),  # the Job itself failed
    ],
)
def test_a_failed_training_is_an_event_stable_untouched_and_retried_after_a_backoff(
    reason: str, message: str
) -> None:
    cluster = healthy_cluster(validation=False)
    broken = JobCouldNotRun(job="md-train-1", reason=reason, message=message)
    cluster.train_outcomes = [broken, registered("8")]
    cluster.drift()
    cluster.run(2)
    failed = [m for _, r, m in cluster.events if r == "RetrainingFailed"]
    assert failed and f"{reason}: {message}" in failed[0] and "stable untouched" in failed[0]
    assert phase(cluster) == Phase.HEALTHY and cluster.status.stable_version == "7"
    progressing = c.find(cluster.status.conditions, c.PROGRESSING)
    assert progressing is not None and progressing.reason == "RetrainingFailed", progressing
    assert f"training Job md-train-1 failed: {reason}: {message}" in progressing.message
    assert "next attempt after 2026-01-10T12:01" in progressing.message
    assert len(cluster.trainings) == 1
    cluster.run(3, step=timedelta(minutes=1))  # the backoff (1 min) is over: attempt 2
    assert [t.attempt for t in cluster.trainings] == [1, 2]
    cluster.run(10)
    assert cluster.status.stable_version == "8"


def test_train_job_action_is_replay_safe() -> None:
    cluster = healthy_cluster()
    cluster.drift()
    decision = cluster.tick(write_status=False)  # acted, status not written: the tick repeats
    again = cluster.tick()
    first = [a for a in decision.actions if isinstance(a, ApplyTrainJob)]
    second = [a for a in again.actions if isinstance(a, ApplyTrainJob)]
    assert first == second and len(cluster.trainings) == 1
