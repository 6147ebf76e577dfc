"""Read the world back every tick: serving Deployments as they are, not as we last wrote them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.rollout.observed import TrackState


def tracks(
    deployments: Iterable[Mapping[str, Any]],
    owner: Owner,
    spec: ModelDeploymentSpec | None,
    pinned: Mapping[str, tuple[str, str]],
    hpa_tracks: frozenset[str] = frozenset(),
) -> dict[str, TrackState]:
    """TrackState per track label; `pinned` maps a track to the (model, version) it should serve;
    the replicas of `hpa_tracks` are their HPA's, never part of what the operator applies."""
    found: dict[str, TrackState] = {}
    for deployment in deployments:
        meta = deployment.get("metadata", {})
        track = (meta.get("labels") or {}).get(names.LABEL_TRACK)
        if not track:
            continue
        want = pinned.get(track)
        replicas = (deployment.get("spec") or {}).get("replicas")
        desired_hash = (
            _desired_hash(owner, spec, track, want, None if track in hpa_tracks else replicas)
            if spec is not None and want
            else None
        )
        actual_hash = (meta.get("annotations") or {}).get(names.ANNOTATION_SPEC_HASH)
        found[track] = _track_state(
            deployment, in_sync=desired_hash is not None and desired_hash == actual_hash
        )
    return found


def _desired_hash(
    owner: Owner, spec: ModelDeploymentSpec, track: str, want: tuple[str, str], replicas: object
) -> str:
    """In sync: the template matches the spec (replica counts are the router's, compared apart)."""
    count = replicas if isinstance(replicas, int) else None
    manifest = builders.serving_deployment(owner, spec, track, *want, count, hpa_owned=count is None)
    return str(manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH])


def _track_state(deployment: Mapping[str, Any], in_sync: bool) -> TrackState:
    meta = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    return TrackState(
        version=(meta.get("labels") or {}).get(names.LABEL_MODEL_VERSION),
        desired_replicas=int(spec.get("replicas", 1)),
        available_replicas=int(status.get("availableReplicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        generation=int(meta.get("generation", 1)),
        observed_generation=int(status.get("observedGeneration", 0)),
        in_sync=in_sync,
    )
