"""Which requeues wait on watched children only (ChildPoll) and which are time or unwatched objects."""

from __future__ import annotations

from typing import Any

from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.rollout import decision, gate
from mlrollout.rollout.polls import ChildPoll, router_poll


def spec(traffic: dict[str, Any] | None = None) -> ModelDeploymentSpec:
    raw: dict[str, Any] = {
        "model": {"name": "m", "version": "1"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "i", "replicas": 2},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    }
    if traffic is not None:
        raw["traffic"] = traffic
    return ModelDeploymentSpec.model_validate(raw)


def test_replica_ratio_moves_by_deployments_routes_by_the_users_objects() -> None:
    assert isinstance(router_poll(spec(), 2.0), ChildPoll)
    assert isinstance(router_poll(spec({"replicaRatio": {}}), 2.0), ChildPoll)
    routed = router_poll(spec({"gatewayAPI": {"httpRoute": "r"}}), 2.0)
    assert routed == 2.0 and not isinstance(routed, ChildPoll)


def test_child_polls_are_floats_and_arithmetic_gives_plain_floats() -> None:
    poll = ChildPoll(5.0)
    assert poll == 5.0 and min(poll, 10.0) is poll
    assert not isinstance(poll + 0.0, ChildPoll)
    assert all(isinstance(p, ChildPoll) for p in (decision.POLL_WHILE_DEPLOYING, gate.POLL_WHILE_RUNNING))
