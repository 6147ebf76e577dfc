"""The status merge patch and the read-back of serving Deployments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase
from mlrollout.reconcile.loop import status_patch
from mlrollout.reconcile.observe import tracks

OWNER = Owner("churn", "ml", "u-1")
SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {"name": "m", "version": "1"},
        "registry": {"trackingUri": "http://mlflow:5000"},
        "serving": {"image": "img:1", "replicas": 2},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
)


def test_patch_is_empty_when_nothing_changed() -> None:
    status = ModelDeploymentStatus(phase=Phase.HEALTHY, stable_version="1", observed_generation=2)
    raw = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert status_patch(raw, status) == {}


def test_patch_removes_dropped_fields_and_leaves_monitoring_alone() -> None:
    raw: dict[str, Any] = {
        "phase": "Pending",
        "retry": {"attempts": 1, "reason": "ModelNotFound", "nextAttemptTime": "2025-01-01T00:00:00Z"},
        "monitoring": {"verdict": "Drift"},
    }
    status = ModelDeploymentStatus(phase=Phase.DEPLOYING, stable_version="1")
    patch = status_patch(raw, status)
    assert patch["phase"] == "Deploying"
    assert patch["retry"] is None
    assert "monitoring" not in patch


def test_timestamps_serialise_to_seconds_in_utc() -> None:
    from mlrollout.api.status import HistoryEntry

    status = ModelDeploymentStatus(
        history=[HistoryEntry(version="1", promoted_at=datetime(2025, 1, 1, tzinfo=UTC))]
    )
    assert status_patch({}, status)["history"] == [{"version": "1", "promotedAt": "2025-01-01T00:00:00Z"}]


def _live(manifest: dict[str, Any], available: int) -> dict[str, Any]:
    return {
        **manifest,
        "metadata": {**manifest["metadata"], "generation": 2},
        "status": {"observedGeneration": 2, "availableReplicas": available, "updatedReplicas": available},
    }


def test_tracks_read_back_state_and_sync() -> None:
    desired = builders.serving_deployment(OWNER, SPEC, "stable", "m", "1")
    stray = builders.serving_deployment(OWNER, SPEC, "canary", "m", "2")
    found = tracks([_live(desired, 2), _live(stray, 0)], OWNER, SPEC, {"stable": ("m", "1")})
    assert found["stable"].in_sync and found["stable"].rolled_out and found["stable"].available
    assert found["stable"].version == "1"
    assert not found["canary"].in_sync  # nobody pinned it
    # Replica counts belong to the router (compared by the core against the weight); the template
    # is what "in sync" means.
    bigger = SPEC.model_copy(update={"serving": SPEC.serving.model_copy(update={"replicas": 5})})
    assert tracks([_live(desired, 2)], OWNER, bigger, {"stable": ("m", "1")})["stable"].in_sync
    other = SPEC.model_copy(update={"serving": SPEC.serving.model_copy(update={"image": "img:2"})})
    assert not tracks([_live(desired, 2)], OWNER, other, {"stable": ("m", "1")})["stable"].in_sync


def test_unlabelled_deployments_are_ignored() -> None:
    desired = builders.serving_deployment(OWNER, SPEC, "stable", "m", "1")
    del desired["metadata"]["labels"][names.LABEL_TRACK]
    assert tracks([desired], OWNER, SPEC, {}) == {}


def test_event_names_replay_identically_and_differ_otherwise() -> None:
    from mlrollout.reconcile.loop import event_name
    from mlrollout.rollout.actions import EmitEvent

    event = EmitEvent("Normal", "Deploying", "Pending -> Deploying")
    before = {"phase": "Pending"}
    name = event_name(OWNER, before, event)
    assert name == event_name(OWNER, dict(before), event)  # a replayed tick: the API server refuses it
    assert name != event_name(OWNER, {"phase": "Healthy"}, event)
    assert name != event_name(OWNER, before, EmitEvent("Normal", "Healthy", "Pending -> Deploying"))
    assert name.startswith("churn.") and len(name) <= 253


def test_a_finished_rollout_clears_nested_keys_with_nulls() -> None:
    """A merge patch keeps keys it does not name: a promoted candidate must be removed explicitly."""
    from mlrollout.api.status import ModelDeploymentStatus
    from mlrollout.reconcile.loop import status_patch

    raw = {
        "phase": "Progressing",
        "rollout": {"candidate": {"modelName": "m", "version": "2"}, "stepIndex": 3},
    }
    done = ModelDeploymentStatus.model_validate({"phase": "Deploying", "rollout": {"handledRequest": "p-1"}})
    patch = status_patch(raw, done)
    assert patch["rollout"] == {"candidate": None, "stepIndex": None, "handledRequest": "p-1"}
    assert patch["phase"] == "Deploying"
    assert status_patch(raw | {"phase": "Deploying", "rollout": {"handledRequest": "p-1"}}, done).keys() <= {
        "history",
        "conditions",
    }
