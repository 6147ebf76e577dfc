"""Requeues that only wait for the operator's own children to change (a Deployment to roll out, a
Service's selector to read back, a Job to finish). Marked by type, not by value, so that a pause or
an analysis interval of the same length is never mistaken for one: an operator that watches its
children is woken by their change and may poll these far less often. Arithmetic on one gives a
plain float again, which is the safe side (polled as before)."""

from __future__ import annotations

from mlrollout.api.spec import ModelDeploymentSpec


class ChildPoll(float):
    """A requeue_after in seconds that waits on watched children only."""

    def __repr__(self) -> str:
        return f"ChildPoll({float(self)!r})"


def router_poll(spec: ModelDeploymentSpec, seconds: float) -> float:
    """Waiting for traffic to move: on the replica-ratio router that is Deployments (watched); a
    Gateway API or Istio route is the user's object, not watched, so it keeps being polled."""
    if spec.traffic is not None and spec.traffic.replica_ratio is None:
        return seconds
    return ChildPoll(seconds)
