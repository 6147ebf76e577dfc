"""decide(): table-driven scenarios of this issue's scope, and properties over arbitrary inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase, RetryState
from mlrollout.rollout import decision as decide
from mlrollout.rollout.actions import ApplyService, ApplyServing, DeleteService, DeleteServing, EmitEvent
from mlrollout.rollout.observed import Observed, RegistryProblem, ResolvedModel, TrackState
from mlrollout.rollout.phases import can_transition

NOW = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 2},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
)
V7 = ResolvedModel("churn", "7", "champion")
NOT_FOUND = RegistryProblem("ModelNotFound", "registered model churn has no alias champion")
UNREACHABLE = RegistryProblem("RegistryUnreachable", "connection refused")
READY = TrackState(
    version="7",
    desired_replicas=2,
    available_replicas=2,
    updated_replicas=2,
    generation=1,
    observed_generation=1,
)
ROLLING = TrackState(
    version="7",
    desired_replicas=2,
    available_replicas=2,
    updated_replicas=1,
    generation=2,
    observed_generation=1,
)
DOWN = TrackState(
    version="7",
    desired_replicas=2,
    available_replicas=0,
    updated_replicas=2,
    generation=1,
    observed_generation=1,
)
STALE = TrackState(
    version="7",
    desired_replicas=2,
    available_replicas=2,
    updated_replicas=2,
    generation=1,
    observed_generation=1,
    in_sync=False,
)


def status(phase: Phase = Phase.PENDING, stable: str | None = None, **kw: object) -> ModelDeploymentStatus:
    base = ModelDeploymentStatus(phase=phase, stable_version=stable, model_name="churn" if stable else None)
    return base.model_copy(update=kw)


def events(decision: decide.Decision) -> list[tuple[str, str]]:
    return [(a.type, a.reason) for a in decision.actions if isinstance(a, EmitEvent)]


def cond(decision: decide.Decision, type_: str) -> tuple[str, str]:
    found = c.find(decision.status.conditions, type_)
    assert found is not None
    return found.status, found.reason


@pytest.mark.parametrize(
    ("name", "before", "observed", "phase", "ready", "degraded"),
    [
        ("first tick pins and deploys", status(), Observed(1, V7), Phase.DEPLOYING, "False", "False"),
        (
            "rollout finishes",
            status(Phase.DEPLOYING, "7"),
            Observed(1, V7, {"stable": READY}),
            Phase.HEALTHY,
            "True",
            "False",
        ),
        (
            "still rolling",
            status(Phase.DEPLOYING, "7"),
            Observed(2, V7, {"stable": ROLLING}),
            Phase.DEPLOYING,
            "True",
            "False",
        ),
        (
            "spec edit rolls healthy pods",
            status(Phase.HEALTHY, "7"),
            Observed(2, V7, {"stable": STALE}),
            Phase.DEPLOYING,
            "False",
            "False",
        ),
        (
            "pods lost",
            status(Phase.HEALTHY, "7"),
            Observed(1, V7, {"stable": DOWN}),
            Phase.DEGRADED,
            "False",
            "True",
        ),
        (
            "pods back",
            status(Phase.DEGRADED, "7"),
            Observed(1, V7, {"stable": READY}),
            Phase.HEALTHY,
            "True",
            "False",
        ),
        ("model missing at start", status(), Observed(1, NOT_FOUND), Phase.PENDING, "False", "True"),
        (
            "registry down while serving",
            status(Phase.HEALTHY, "7"),
            Observed(1, UNREACHABLE, {"stable": READY}),
            Phase.DEGRADED,
            "True",
            "True",
        ),
        (
            "paused",
            status(Phase.HEALTHY, "7"),
            Observed(1, V7, {"stable": READY}, paused=True),
            Phase.PAUSED,
            "False",
            "False",
        ),
    ],
)
def test_phase_and_conditions(
    name: str, before: ModelDeploymentStatus, observed: Observed, phase: Phase, ready: str, degraded: str
) -> None:
    decision = decide.decide(SPEC, before, observed, NOW)
    assert decision.phase == phase, name
    assert decision.status.phase == phase
    assert cond(decision, c.READY)[0] == ready, name
    assert cond(decision, c.DEGRADED)[0] == degraded, name
    assert decision.status.observed_generation == observed.generation
    assert {x.type for x in decision.status.conditions} == set(c.CONDITION_TYPES)


def test_first_tick_pins_the_resolved_version_and_applies_stable() -> None:
    decision = decide.decide(SPEC, status(), Observed(1, V7), NOW)
    assert decision.status.stable_version == "7"
    assert decision.status.model_name == "churn"
    assert decision.status.weights is not None and decision.status.weights.stable == 100
    assert [h.version for h in decision.status.history] == ["7"]
    assert ApplyServing("stable", "churn", "7") in decision.actions
    assert ApplyService() in decision.actions
    assert ("Normal", "VersionPinned") in events(decision)
    assert ("Normal", "Deploying") in events(decision)
    assert decision.requeue_after == decide.POLL_WHILE_DEPLOYING


def test_a_new_version_becomes_the_candidate_never_stable_directly() -> None:
    before = status(Phase.HEALTHY, "7")
    decision = decide.decide(SPEC, before, Observed(1, ResolvedModel("churn", "8"), {"stable": READY}), NOW)
    assert decision.status.stable_version == "7"
    assert decision.status.rollout is not None and decision.status.rollout.candidate is not None
    assert decision.status.rollout.candidate.version == "8"
    assert decision.status.pending_version is None
    assert ApplyServing("stable", "churn", "7", 2) in decision.actions
    assert cond(decision, c.PROGRESSING) == ("True", "WeightMoving")
    assert ("Normal", "NewCandidate") in events(decision)
    again = decide.decide(
        SPEC, decision.status, Observed(1, ResolvedModel("churn", "8"), {"stable": READY}), NOW
    )
    assert events(again) == []  # reported once, not every tick


def test_model_not_found_creates_nothing_and_backs_off() -> None:
    first = decide.decide(SPEC, status(), Observed(1, NOT_FOUND), NOW)
    assert not [a for a in first.actions if not isinstance(a, EmitEvent)]
    assert events(first) == [("Warning", "ModelNotFound")]
    assert cond(first, c.DEGRADED) == ("True", "ModelNotFound")
    assert first.status.retry is not None and first.status.retry.attempts == 1
    second = decide.decide(SPEC, first.status, Observed(1, NOT_FOUND), NOW + timedelta(seconds=5))
    assert second.status.retry is not None and second.status.retry.attempts == 2
    assert second.requeue_after is not None and first.requeue_after is not None
    assert second.requeue_after > first.requeue_after
    assert events(second) == []  # the same problem is not announced again
    fixed = decide.decide(SPEC, second.status, Observed(1, V7), NOW + timedelta(seconds=20))
    assert fixed.status.retry is None
    assert cond(fixed, c.DEGRADED) == ("False", "AsExpected")


def test_registry_outage_keeps_serving_the_pinned_version() -> None:
    decision = decide.decide(
        SPEC, status(Phase.HEALTHY, "7"), Observed(1, UNREACHABLE, {"stable": READY}), NOW
    )
    assert ApplyServing("stable", "churn", "7") in decision.actions
    assert ("Warning", "RegistryUnreachable") in events(decision)
    assert ("Warning", "Degraded") in events(decision)


def test_stray_tracks_are_removed() -> None:
    tracks = {"stable": READY, "canary": READY}
    decision = decide.decide(SPEC, status(Phase.HEALTHY, "7"), Observed(1, V7, tracks), NOW)
    assert DeleteServing("canary") in decision.actions
    assert DeleteServing("stable") not in decision.actions


def test_paused_takes_no_action_and_resumes_from_observation() -> None:
    paused = decide.decide(
        SPEC, status(Phase.HEALTHY, "7"), Observed(2, V7, {"stable": READY}, paused=True), NOW
    )
    assert [a for a in paused.actions if not isinstance(a, EmitEvent)] == []
    assert cond(paused, c.PAUSED) == ("True", "PausedByUser")
    resumed = decide.decide(SPEC, paused.status, Observed(2, V7, {"stable": STALE}), NOW)
    assert resumed.phase == Phase.DEPLOYING
    assert cond(resumed, c.PAUSED)[0] == "False"


def test_unchanged_world_is_quiet() -> None:
    settled = decide.decide(SPEC, status(Phase.DEPLOYING, "7"), Observed(1, V7, {"stable": READY}), NOW)
    again = decide.decide(
        SPEC, settled.status, Observed(1, V7, {"stable": READY}), NOW + timedelta(minutes=1)
    )
    assert events(again) == []
    assert again.status == settled.status  # condition transition times did not move


def test_delete_removes_every_child_then_lets_go() -> None:
    tracks = {"stable": READY, "canary": READY}
    first = decide.decide(
        SPEC, status(Phase.HEALTHY, "7"), Observed(1, None, tracks, True, deleting=True), NOW
    )
    assert first.phase == Phase.TERMINATING
    assert {DeleteServing("stable"), DeleteServing("canary"), DeleteService()} <= set(first.actions)
    assert ("Normal", "Terminating") in events(first)
    assert first.requeue_after is not None  # not done until a tick sees nothing left
    done = decide.decide(SPEC, first.status, Observed(1, None, {}, False, deleting=True), NOW)
    assert done.requeue_after is None
    assert [a for a in done.actions if not isinstance(a, EmitEvent)] == []


def test_a_spec_the_models_refuse_is_reported_not_acted_on() -> None:
    decision = decide.reject_spec(status(), 2, "spec.serving.replicas: must be >= 0", NOW)
    assert decision.phase == Phase.FAILED
    assert cond(decision, c.DEGRADED) == ("True", "InvalidSpec")
    assert [a for a in decision.actions if not isinstance(a, EmitEvent)] == []
    assert ("Warning", "InvalidSpec") in events(decision)
    serving = decide.reject_spec(status(Phase.HEALTHY, "7"), 2, "bad", NOW)
    assert serving.phase == Phase.HEALTHY  # the pinned version keeps serving


# Properties over arbitrary inputs ----------------------------------------------------------------

tracks_st = st.builds(
    TrackState,
    version=st.sampled_from(["6", "7", None]),
    desired_replicas=st.integers(0, 5),
    available_replicas=st.integers(0, 5),
    updated_replicas=st.integers(0, 5),
    generation=st.integers(1, 4),
    observed_generation=st.integers(0, 4),
    in_sync=st.booleans(),
)
models_st = st.one_of(
    st.builds(ResolvedModel, name=st.just("churn"), version=st.sampled_from(["6", "7", "8"])),
    st.sampled_from([NOT_FOUND, UNREACHABLE, RegistryProblem("RegistryError", "HTTP 500")]),
)
observed_st = st.builds(
    Observed,
    generation=st.integers(1, 5),
    model=models_st,
    tracks=st.dictionaries(st.sampled_from(["stable", "canary"]), tracks_st, max_size=2),
    paused=st.booleans(),
    deleting=st.booleans(),
)
# Status invariant: only Pending, Failed and Paused exist before a version is pinned.
UNPINNED_PHASES = [Phase.PENDING, Phase.FAILED, Phase.PAUSED]
status_st = st.sampled_from([None, "6", "7"]).flatmap(
    lambda stable: st.builds(
        status,
        phase=st.sampled_from(
            UNPINNED_PHASES if stable is None else [p for p in Phase if p != Phase.TERMINATING]
        ),
        stable=st.just(stable),
        retry=st.one_of(
            st.none(),
            st.integers(0, 30).map(
                lambda n: RetryState(attempts=n, reason="ModelNotFound", next_attempt_time=NOW)
            ),
        ),
    )
)


@given(before=status_st, observed=observed_st)
def test_only_allowed_transitions(before: ModelDeploymentStatus, observed: Observed) -> None:
    # decide() raises IllegalTransition on a forbidden edge (no clamp): this checks the verdict itself.
    decision = decide.decide(SPEC, before, observed, NOW)
    assert can_transition(before.phase, decision.phase)


def test_an_illegal_edge_is_an_error_not_a_clamp() -> None:
    terminating = status(Phase.TERMINATING, "7")
    with pytest.raises(decide.IllegalTransition):
        decide.decide(SPEC, terminating, Observed(1, V7, {"stable": READY}), NOW)


@given(before=status_st, observed=observed_st)
def test_every_phase_change_is_announced(before: ModelDeploymentStatus, observed: Observed) -> None:
    decision = decide.decide(SPEC, before, observed, NOW)
    announced = [
        a.reason for a in decision.actions if isinstance(a, EmitEvent) and a.reason == decision.phase
    ]
    assert bool(announced) == (decision.phase != before.phase)


@given(before=status_st, observed=observed_st)
def test_nothing_is_created_without_a_pinned_version(
    before: ModelDeploymentStatus, observed: Observed
) -> None:
    decision = decide.decide(SPEC, before, observed, NOW)
    applies = [a for a in decision.actions if isinstance(a, ApplyServing)]
    if decision.status.stable_version is None:
        assert applies == []
    for action in applies:  # the stable track only ever serves the pinned version
        assert action.version == decision.status.stable_version


@given(before=status_st, observed=observed_st)
def test_deciding_twice_is_stable(before: ModelDeploymentStatus, observed: Observed) -> None:
    first = decide.decide(SPEC, before, observed, NOW)
    second = decide.decide(SPEC, first.status, observed, NOW)
    assert second.phase == first.phase
    assert second.status.stable_version == first.status.stable_version
    assert not any(isinstance(a, EmitEvent) and a.reason == second.phase for a in second.actions)


@given(start=st.sampled_from([p for p in Phase if p not in {Phase.TERMINATING}]), replicas=st.integers(0, 5))
def test_a_settled_world_converges_to_healthy_from_any_phase(start: Phase, replicas: int) -> None:
    ready = TrackState(
        version="7",
        desired_replicas=replicas,
        available_replicas=replicas,
        updated_replicas=replicas,
        generation=1,
        observed_generation=1,
    )
    current = status(start, "7")
    for _ in range(2):
        current = decide.decide(SPEC, current, Observed(1, V7, {"stable": ready}), NOW).status
    assert current.phase == Phase.HEALTHY
