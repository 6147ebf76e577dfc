"""The validation gate in the pure core: a table of single steps, then whole rollouts on a fake
cluster whose gate Jobs finish with a given result (passed, failed, could not run, never finishing)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_cluster import FakeCluster
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrollout.adapters.k8s.jobs import gate_job_name
from mlrollout.api import conditions as c
from mlrollout.api.gate import GateCheck, GateReport, GateStatus
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, Phase, RolloutStatus
from mlrollout.rollout import gate
from mlrollout.rollout.actions import Action, ApplyGateJob, DeleteJob, EmitEvent, SetWeights, TagVersion
from mlrollout.rollout.decision import Decision
from mlrollout.rollout.gate import GateResult
from mlrollout.rollout.observed import ManualRequest, Observed

NOW = datetime(2025, 1, 1, tzinfo=UTC)
VALIDATION = {
    "dataset": {"uri": "s3://b/holdout.parquet", "target": "churned"},
    "metrics": [{"name": "roc_auc", "min": 0.84}],
}


def spec(validation: dict[str, Any] | None = VALIDATION) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 4},
        "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}},
    }
    if validation is not None:
        body["validation"] = validation
    return ModelDeploymentSpec.model_validate(body)


AUC_LOW = GateCheck(name="metric:roc_auc", verdict="failed", value=0.7123, threshold=0.84)
AUC_OK = GateCheck(name="metric:roc_auc", verdict="passed", value=0.88, threshold=0.84)
PASSED = GateReport(outcome="passed", model_name="churn", version="8", checks=[AUC_OK])
FAILED = GateReport(outcome="failed", model_name="churn", version="8", checks=[AUC_LOW])
NO_DATA = GateReport(
    outcome="error", model_name="churn", version="8", reason="dataset s3://b/holdout.parquet does not exist"
)
BAD_SEGMENT = GateReport(
    outcome="error",
    model_name="churn",
    version="8",
    reason="segment \"plan = 'x'\" does not parse: invalid syntax",
)
DEADLINE = JobCouldNotRun(job="md-gate-8-1", reason="DeadlineExceeded", message="Job was active longer")
RUNNING = JobRunning(job="md-gate-8-1")


def rollout(phase: str | None = None, attempt: int = 1, version: str = "8", **gate_kw: Any) -> RolloutStatus:
    g = (
        GateStatus(
            version=version, job=f"md-gate-{version}-{attempt}", attempt=attempt, phase=phase, **gate_kw
        )
        if phase
        else None
    )
    return RolloutStatus(candidate=Candidate(model_name="churn", version="8"), gate=g, step_started_at=NOW)


def kinds(actions: tuple[Action, ...]) -> list[str]:
    return [type(a).__name__ if not isinstance(a, EmitEvent) else f"Event:{a.reason}" for a in actions]


LATER = NOW + timedelta(minutes=1)
APPLY, DELETE, TAG = "ApplyGateJob", "DeleteJob", "TagVersion"
STARTED, PASS_EV, FAIL_EV, ERR_EV = (
    f"Event:{r}" for r in ("GateStarted", "GatePassed", "GateFailed", "GateCouldNotRun")
)
RESTART = [DELETE, APPLY, STARTED]
CASES = [
    # id, rollout status, observed result, spec changed, -> outcome, actions, gate phase, attempt
    ("first tick starts attempt 1", rollout(), None, False, "hold", [APPLY, STARTED], "Running", 1),
    ("job not read back yet: applied again", rollout("Running"), None, False, "hold", [APPLY], "Running", 1),
    ("running", rollout("Running"), RUNNING, False, "hold", [], "Running", 1),
    ("passed", rollout("Running"), PASSED, False, "proceed", [TAG, PASS_EV], "Passed", 1),
    ("passed stays passed", rollout("Passed"), None, False, "proceed", [], "Passed", 1),
    ("ran and failed: rejected", rollout("Running"), FAILED, False, "reject", [TAG, FAIL_EV], "Failed", 1),
    ("dataset missing: could not run", rollout("Running"), NO_DATA, False, "hold", [ERR_EV], "Error", 1),
    ("bad input: could not run", rollout("Running"), BAD_SEGMENT, False, "hold", [ERR_EV], "Error", 1),
    ("deadline: could not run", rollout("Running"), DEADLINE, False, "hold", [ERR_EV], "Error", 1),
    ("backoff not over: wait", rollout("Error", next_attempt_at=LATER), None, False, "hold", [], "Error", 1),
    ("backoff over", rollout("Error", next_attempt_at=NOW), None, False, "hold", RESTART, "Running", 2),
    ("spec fixed", rollout("Error", next_attempt_at=LATER), None, True, "hold", RESTART, "Running", 2),
    ("retry after rejection", rollout("Failed"), None, False, "hold", [APPLY, STARTED], "Running", 2),
    ("older candidate's gate", rollout("Running", version="7"), None, False, "hold", RESTART, "Running", 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "result", "changed", "outcome", "actions", "phase", "attempt"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_gate_step(
    before: RolloutStatus,
    result: GateResult | None,
    changed: bool,
    outcome: str,
    actions: list[str],
    phase: str,
    attempt: int,
) -> None:
    got = gate.step(spec(), before, result, "md", changed, NOW)
    assert got.outcome == outcome
    assert kinds(got.actions) == actions
    assert got.rollout.gate is not None
    assert (got.rollout.gate.phase, got.rollout.gate.attempt) == (phase, attempt)
    assert got.rollout.gate.job == gate_job_name("md", "8", attempt)  # the adapter builds this very name
    for action in got.actions:
        if isinstance(action, ApplyGateJob):
            assert action == ApplyGateJob("8", attempt)


def test_rejection_names_the_failed_checks_and_tags_the_version() -> None:
    got = gate.step(spec(), rollout("Running"), FAILED, "md", False, NOW)
    assert got.rollout.candidate is None and got.rollout.aborted_version == "8"
    assert got.rollout.gate is not None and got.rollout.gate.checks == [AUC_LOW]  # per-check results kept
    assert "metric:roc_auc = 0.7123 (threshold 0.84)" in got.message
    [tag] = [a for a in got.actions if isinstance(a, TagVersion)]
    tags = dict(tag.tags)
    assert tags["mlrollout.rollout"] == "rejected" and tags["mlrollout.gate"] == "failed"
    [event] = [a for a in got.actions if isinstance(a, EmitEvent)]
    assert event.type == "Warning" and "0.7123" in event.message and "0.84" in event.message


def test_could_not_run_backs_off_and_says_why() -> None:
    first = gate.step(spec(), rollout("Running"), NO_DATA, "md", False, NOW)
    assert first.rollout.gate is not None and first.rollout.gate.next_attempt_at == NOW + timedelta(seconds=5)
    assert "does not exist" in first.message and first.requeue_after == 5.0
    third = gate.step(spec(), rollout("Running", attempt=3), NO_DATA, "md", False, NOW)
    assert third.rollout.gate is not None and third.rollout.gate.next_attempt_at == NOW + timedelta(
        seconds=20
    )


def test_bad_input_is_could_not_run_with_the_reason_in_status_and_event() -> None:
    got = gate.step(spec(), rollout("Running"), BAD_SEGMENT, "md", False, NOW)
    assert got.outcome == "hold" and got.reason == "GateCouldNotRun" and "does not parse" in got.message
    assert got.rollout.gate is not None and "does not parse" in (got.rollout.gate.reason or "")
    [event] = got.actions
    assert isinstance(event, EmitEvent) and event.type == "Warning" and "does not parse" in event.message
    assert not any(isinstance(a, TagVersion) for a in got.actions)  # neither a rejection nor a pass


def test_passing_restarts_the_step_clock_so_pauses_count_from_the_gate() -> None:
    got = gate.step(spec(), rollout("Running"), PASSED, "md", False, NOW + timedelta(minutes=9))
    assert got.rollout.step_started_at == NOW + timedelta(minutes=9)


def test_no_validation_no_gate_and_a_running_job_is_cancelled() -> None:
    assert gate.step(spec(None), rollout(), None, "md", False, NOW).outcome == "proceed"
    got = gate.step(spec(None), rollout("Running"), RUNNING, "md", False, NOW)
    assert (
        got.outcome == "proceed" and got.actions == (DeleteJob("md-gate-8-1"),) and got.rollout.gate is None
    )


# -- whole rollouts on the fake cluster --------------------------------------------------------------


@dataclass
class GateCluster(FakeCluster):
    """Gate Jobs finish with `outcomes[version]` (the first of the list per attempt; the last repeats)."""

    outcomes: dict[str, list[GateResult | None]] = field(default_factory=dict)
    jobs: dict[str, GateResult] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    generation: int = 1

    def observed(self) -> Observed:
        rollout = self.status.rollout
        recorded = rollout.gate.job if rollout and rollout.gate else None
        found = self.jobs.get(recorded) if recorded else None
        return replace(super().observed(), name="md", gate=found, generation=self.generation)

    def act(self, action: Action) -> None:
        if isinstance(action, ApplyGateJob):
            name = gate_job_name("md", action.version, action.attempt)
            if name not in self.jobs:
                self.applied.append(name)
                results = self.outcomes[action.version]
                result = results[min(action.attempt - 1, len(results) - 1)]
                self.jobs[name] = result if result is not None else JobRunning(job=name)
        elif isinstance(action, DeleteJob):
            self.deleted.append(action.name)
            self.jobs.pop(action.name, None)
        else:
            super().act(action)


def settled(
    outcomes: dict[str, list[GateResult | None]], validation: dict[str, Any] | None = VALIDATION
) -> GateCluster:
    cluster = GateCluster(spec(validation), "7", NOW, outcomes=outcomes)
    cluster.run(3)
    assert phase(cluster) == Phase.HEALTHY and not cluster.applied
    cluster.version = "8"
    return cluster


def phase(cluster: FakeCluster) -> Phase:
    """Read afresh (mypy would keep an earlier comparison's narrowing across ticks)."""
    return cluster.status.phase


def condition(cluster: FakeCluster, type_: str) -> tuple[str, str, str]:
    found = c.find(cluster.status.conditions, type_)
    assert found is not None
    return found.status, found.reason, found.message


def weights_set(cluster: FakeCluster) -> list[SetWeights]:
    return [a for d in cluster.decisions for a in d.actions if isinstance(a, SetWeights)]


def test_a_passing_candidate_is_validated_then_walks_into_its_canary() -> None:
    cluster = settled({"8": [PASSED]})
    cluster.tick()
    assert phase(cluster) == Phase.VALIDATING and not weights_set(cluster)
    assert condition(cluster, "Progressing")[1] == "GateRunning"
    assert set(cluster.tracks) == {"stable"}
    cluster.run(3)
    assert phase(cluster) == Phase.PROGRESSING and cluster.status.canary_version == "8"
    assert weights_set(cluster)[0].canary_weight == 25
    assert cluster.applied == ["md-gate-8-1"] and cluster.tags["8"]["mlrollout.gate"] == "passed"
    assert (
        cluster.status.rollout
        and cluster.status.rollout.gate
        and cluster.status.rollout.gate.checks == [AUC_OK]
    )


def test_a_failing_candidate_is_rejected_traffic_untouched_and_never_gated_again() -> None:
    cluster = settled({"8": [FAILED]})
    cluster.run(20)
    assert phase(cluster) == Phase.HEALTHY and cluster.status.stable_version == "7"
    assert not weights_set(cluster) and set(cluster.tracks) == {"stable"}
    assert cluster.tracks["stable"].version == "7" and cluster.alias_moves == []
    assert cluster.applied == ["md-gate-8-1"]  # not re-gated in a loop
    assert (
        cluster.tags["8"]["mlrollout.rollout"] == "rejected"
        and cluster.tags["8"]["mlrollout.gate"] == "failed"
    )
    assert cluster.reasons().count("GateFailed") == 1
    status, reason, message = condition(cluster, "Progressing")
    assert (status, reason) == ("False", "GateFailed") and "0.7123" in message and "0.84" in message
    assert cluster.status.rollout and cluster.status.rollout.gate
    assert cluster.status.rollout.gate.checks == [AUC_LOW]

    # `retry` gates the same version again as a new attempt; a fixed model now passes.
    cluster.outcomes["8"] = [FAILED, PASSED]
    cluster.request = ManualRequest(id="r-1", action="retry")
    cluster.run(4)
    assert cluster.applied == ["md-gate-8-1", "md-gate-8-2"]
    assert phase(cluster) == Phase.PROGRESSING and weights_set(cluster)


def test_could_not_run_is_retried_with_backoff_never_a_verdict() -> None:
    cluster = settled({"8": [NO_DATA, DEADLINE, NO_DATA, PASSED]})
    cluster.run(2, step=timedelta(seconds=1))
    assert phase(cluster) == Phase.VALIDATING
    _, reason, message = condition(cluster, "Progressing")
    assert reason == "GateCouldNotRun" and "does not exist" in message
    assert "mlrollout.gate" not in cluster.tags.get("8", {}) and not weights_set(cluster)
    cluster.run(3, step=timedelta(seconds=1))  # inside the 5 s backoff: no new Job
    assert cluster.applied == ["md-gate-8-1"]
    cluster.run(120, step=timedelta(seconds=1))
    assert cluster.applied == ["md-gate-8-1", "md-gate-8-2", "md-gate-8-3", "md-gate-8-4"]
    assert cluster.deleted == ["md-gate-8-1", "md-gate-8-2", "md-gate-8-3"]  # attempts that errored go
    assert phase(cluster) == Phase.PROGRESSING
    assert cluster.reasons().count("GateCouldNotRun") == 3 and "GateFailed" not in cluster.reasons()


def test_a_newer_version_during_the_gate_cancels_its_job_and_is_gated_instead() -> None:
    cluster = settled({"8": [None], "9": [PASSED.model_copy(update={"version": "9"})]})
    cluster.run(3)
    assert phase(cluster) == Phase.VALIDATING and cluster.applied == ["md-gate-8-1"]
    cluster.version = "9"
    cluster.run(3)
    assert cluster.deleted == ["md-gate-8-1"] and cluster.applied == ["md-gate-8-1", "md-gate-9-1"]
    assert phase(cluster) == Phase.PROGRESSING and cluster.status.canary_version == "9"


def test_a_newer_version_mid_canary_goes_back_to_validating() -> None:
    cluster = settled({"8": [PASSED], "9": [None]})
    cluster.run(4)
    assert phase(cluster) == Phase.PROGRESSING and "canary" in cluster.tracks
    cluster.version = "9"
    cluster.run(3)
    assert phase(cluster) == Phase.VALIDATING and set(cluster.tracks) == {"stable"}  # 8's canary gone
    assert cluster.tracks["stable"].version == "7"


def test_abort_during_the_gate_stops_its_job() -> None:
    cluster = settled({"8": [None]})
    cluster.run(2)
    cluster.request = ManualRequest(id="a-1", action="abort")
    cluster.run(2)
    assert cluster.deleted == ["md-gate-8-1"] and phase(cluster) == Phase.ROLLED_BACK


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([None, "passed", "failed", "error", "deadline"]), min_size=1, max_size=5),
    st.lists(st.booleans(), min_size=5, max_size=40),
)
def test_no_traffic_moves_before_a_passed_report(results: list[str | None], newer: list[bool]) -> None:
    by = {"passed": PASSED, "failed": FAILED, "error": NO_DATA, "deadline": DEADLINE, None: None}

    def for_version(r: str | None, v: str) -> GateResult | None:
        found = by[r]
        return found.model_copy(update={"version": v}) if isinstance(found, GateReport) else found

    outcomes = {v: [for_version(r, v) for r in results] for v in ("8", "9")}
    cluster = settled(outcomes)
    for i, flip in enumerate(newer):
        if flip and i == len(newer) // 2:
            cluster.version = "9"
        decision: Decision = cluster.tick()  # an illegal phase edge raises here
        cluster.now += timedelta(seconds=7)
        moved = [a for a in decision.actions if isinstance(a, SetWeights)]
        if moved:
            passed = {
                name
                for name, r in cluster.jobs.items()
                if isinstance(r, GateReport) and r.outcome == "passed"
            }
            assert gate_job_name("md", moved[0].canary_version, 1) in passed or any(
                n.startswith(f"md-gate-{moved[0].canary_version}-") for n in passed
            )
        rejected = cluster.tags.get("8", {}).get("mlrollout.rollout") == "rejected"
        if rejected:
            assert "failed" in results
