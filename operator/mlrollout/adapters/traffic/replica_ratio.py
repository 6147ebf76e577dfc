"""Replica-ratio router: the weight becomes replica counts of the stable and canary Deployments behind
one Service (no mesh needed; approximate). The weight read back is the canary's share of ready pods."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Weights
from mlrollout.rollout.actions import SetWeights
from mlrollout.rollout.weights import replica_split, served_weight


def desired_manifests(
    owner: Owner,
    spec: ModelDeploymentSpec,
    weights: SetWeights,
    split: Callable[[int, int], tuple[int, int]] = replica_split,
) -> list[builders.Manifest]:
    """Stable and canary Deployments sized by `split` (the replicas for the weight), or the step's
    canary scale."""
    stable, canary = split(spec.serving.replicas, weights.canary_weight)
    if weights.canary_replicas is not None:
        canary = weights.canary_replicas
    return [
        builders.serving_deployment(
            owner, spec, names.TRACK_STABLE, weights.model_name, weights.stable_version, stable
        ),
        builders.serving_deployment(
            owner, spec, names.TRACK_CANARY, weights.model_name, weights.canary_version, canary
        ),
    ]


def read_weights(deployments: Sequence[Mapping[str, Any]]) -> Weights | None:
    ready: dict[str, int] = {}
    for deployment in deployments:
        track = (deployment.get("metadata", {}).get("labels") or {}).get(names.LABEL_TRACK)
        if track in (names.TRACK_STABLE, names.TRACK_CANARY):
            ready[track] = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    if names.TRACK_CANARY not in ready:
        return None
    share = served_weight(ready.get(names.TRACK_STABLE, 0), ready[names.TRACK_CANARY])
    return Weights(stable=100 - share, canary=share)


@dataclass
class ReplicaRatioRouter:
    executor: KubeExecutor

    def ensure(self, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        """Nothing to check: the live Service is the steady path's (decide() asks for its selector)."""
        return None

    def set_weights(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> None:
        for manifest in desired_manifests(owner, spec, weights):
            self.executor.apply(manifest)

    def get_weights(
        self, owner: Owner, spec: ModelDeploymentSpec | None, deployments: Sequence[Mapping[str, Any]]
    ) -> Weights | None:
        return read_weights(deployments)

    def verify(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> bool:
        stable, canary = replica_split(spec.serving.replicas, weights.canary_weight)
        if weights.canary_replicas is not None:
            canary = weights.canary_replicas
        found = read_weights(self.executor.list_deployments(owner))
        return found is not None and found.canary == served_weight(stable, canary)

    def finalize(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """Nothing of its own to undo: Service selector and candidate track go with the steady path."""

    def restore(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """Owns nothing of the user's."""
