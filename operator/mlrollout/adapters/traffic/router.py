"""The traffic-router protocol. A router must confirm (read back) that a weight really moved before
the rollout advances. Implementations: replica_ratio (default), routes (Gateway API HTTPRoute, Istio
VirtualService). `ensure` is called every tick before deciding: a problem holds the rollout."""

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

    def get_weights(
        self, owner: Owner, spec: ModelDeploymentSpec | None, deployments: Sequence[Mapping[str, Any]]
    ) -> Weights | None:
        """The weights actually served now, read back (None: no candidate track, or not confirmed)."""

    def verify(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> bool: ...

    def finalize(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """No candidate: all traffic to what serves stable (the steady path removes the candidate)."""

    def restore(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """The ModelDeployment is being deleted: give back what the user owns (a route) as they wrote it."""
