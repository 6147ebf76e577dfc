"""Weights behind a router that splits requests (Gateway API, Istio): stable keeps its size, the
canary gets capacity for its share, and the weight is confirmed by the router's exact read-back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Candidate, RolloutStatus, Weights
from mlrollout.rollout import canary
from mlrollout.rollout.observed import Observed, TrackState
from mlrollout.rollout.weights import routed_split


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [(4, 0, (4, 1)), (4, 5, (4, 1)), (4, 25, (4, 1)), (4, 26, (4, 2)), (4, 100, (4, 4)), (0, 50, (1, 1))],
)
def test_routed_split(total: int, weight: int, split: tuple[int, int]) -> None:
    assert routed_split(total, weight) == split


@given(total=st.integers(1, 50), weight=st.integers(0, 100))
def test_routed_split_gives_the_canary_capacity_for_its_share(total: int, weight: int) -> None:
    stable, can = routed_split(total, weight)
    assert stable == total and 1 <= can <= total and can >= total * weight / 100


def spec(traffic: dict[str, object] | None) -> ModelDeploymentSpec:
    body: dict[str, object] = {
        "model": {"name": "churn", "alias": "champion"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 4},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    if traffic is not None:
        body["traffic"] = traffic
    return ModelDeploymentSpec.model_validate(body)


def observed(canary_weight: int, stable: int, can: int) -> Observed:
    return Observed(
        generation=1,
        model=None,
        tracks={
            "stable": TrackState("1", stable, stable, stable, observed_generation=1),
            "canary": TrackState("2", can, can, can, observed_generation=1),
        },
        weights=Weights(stable=100 - canary_weight, canary=canary_weight),
    )


ROLLOUT = RolloutStatus(candidate=Candidate(model_name="churn", version="2"), desired_weight=10)


@pytest.mark.parametrize(
    "traffic", [{"gatewayAPI": {"httpRoute": "web"}}, {"istio": {"virtualService": "web"}}]
)
def test_a_route_confirms_the_exact_weight(traffic: dict[str, object]) -> None:
    s = spec(traffic)
    assert canary.expected_replicas(s, ROLLOUT) == (4, 1)
    assert canary.weight_confirmed(s, ROLLOUT, observed(10, 4, 1))
    assert not canary.weight_confirmed(s, ROLLOUT, observed(20, 4, 1))  # the replica ratio's 1 of 5


def test_replica_ratio_still_confirms_by_replica_share() -> None:
    s = spec(None)
    assert canary.expected_replicas(s, ROLLOUT) == (4, 1)
    assert canary.weight_confirmed(s, ROLLOUT, observed(20, 4, 1))
    assert not canary.weight_confirmed(s, ROLLOUT, observed(10, 4, 1))
