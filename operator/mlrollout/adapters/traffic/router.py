"""The traffic-router protocol. A router must confirm (read back) that a weight really moved before
the rollout advances; Gateway API and Istio routers implement the same protocol later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Weights
from mlrollout.rollout.actions import SetWeights


class TrafficRouter(Protocol):
    def ensure(self, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        """Make the routing objects exist; a problem (e.g. a route object missing) as a sentence."""

    def set_weights(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> None: ...

    def get_weights(self, deployments: Sequence[Mapping[str, Any]]) -> Weights | None:
        """The weights actually served now (None: no candidate track)."""

    def verify(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> bool: ...

    def finalize(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """All traffic to stable once the rollout ended (the steady path removes the candidate)."""
