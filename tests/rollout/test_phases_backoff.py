"""Transitions as data, backoff spacing, condition bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api import conditions as c
from mlrollout.api.status import ModelDeploymentStatus, Phase, RetryState
from mlrollout.rollout import backoff
from mlrollout.rollout.phases import TRANSITIONS, can_transition

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_every_phase_has_a_transition_entry() -> None:
    assert set(TRANSITIONS) == set(Phase)


def test_terminating_is_final_and_reachable_from_all() -> None:
    for phase in Phase:
        assert can_transition(phase, Phase.TERMINATING)
        assert can_transition(Phase.TERMINATING, phase) == (phase == Phase.TERMINATING)


def test_every_phase_is_reachable_from_pending() -> None:
    seen, frontier = {Phase.PENDING}, [Phase.PENDING]
    while frontier:
        for target in Phase:
            if target not in seen and can_transition(frontier[-1], target):
                seen.add(target)
                frontier.insert(0, target)
        frontier.pop()
    assert seen == set(Phase)


@given(st.integers(0, 10_000))
def test_backoff_grows_and_is_capped(attempts: int) -> None:
    assert backoff.delay(attempts) <= backoff.delay(attempts + 1)
    assert timedelta(seconds=backoff.BASE_SECONDS) <= backoff.delay(attempts)
    assert backoff.delay(attempts) <= timedelta(seconds=backoff.MAX_SECONDS)


def test_wait_remaining_respects_backoff_until_the_spec_changes() -> None:
    retry = RetryState(attempts=2, reason="ModelNotFound", next_attempt_time=NOW + timedelta(seconds=10))
    status = ModelDeploymentStatus(observed_generation=3, retry=retry)
    assert backoff.wait_remaining(status, 3, NOW) == 10
    assert backoff.wait_remaining(status, 3, NOW + timedelta(seconds=11)) is None
    assert backoff.wait_remaining(status, 4, NOW) is None  # a new spec is tried at once
    assert backoff.wait_remaining(ModelDeploymentStatus(), 1, NOW) is None


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = c.set_condition([], c.READY, "False", "Deploying", "", NOW, 1)
    later = NOW + timedelta(minutes=1)
    same = c.set_condition(first, c.READY, "False", "StillDeploying", "x", later, 2)
    assert same[0].last_transition_time == NOW and same[0].reason == "StillDeploying"
    flipped = c.set_condition(same, c.READY, "True", "Available", "", later, 2)
    assert flipped[0].last_transition_time == later


def test_conditions_keep_a_stable_order() -> None:
    conds: list[c.Condition] = []
    for type_ in (c.PAUSED, "Custom", c.READY, c.DEGRADED, c.PROGRESSING):
        conds = c.set_condition(conds, type_, "False", "X", "", NOW)
    assert [x.type for x in conds] == [c.READY, c.PROGRESSING, c.DEGRADED, c.PAUSED, "Custom"]
