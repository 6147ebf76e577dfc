"""What decide() asks the adapters to do: intents with parameters, not manifests (builders live in the
adapters). Every action is safe to replay: a tick interrupted between acting and writing status runs
again from the same status and asks for the same things."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ApplyServing:
    """Create or update the serving Deployment of one track, pinned to an exact model version.

    `replicas` None: spec.serving.replicas (or left to an HPA that targets the Deployment).
    """

    track: str
    model_name: str
    version: str
    replicas: int | None = None


@dataclass(frozen=True)
class ApplyService:
    """The Service that carries live traffic; `selector_track` None selects every track (replica ratio)."""

    selector_track: str | None = "stable"


@dataclass(frozen=True)
class ApplyPreviewService:
    """Blue-green: the preview Service over the preview track (for tests before promotion)."""


@dataclass(frozen=True)
class DeletePreviewService:
    pass


@dataclass(frozen=True)
class SetWeights:
    """Ask the traffic router for `canary_weight` % to the candidate (replica ratio: replica counts)."""

    model_name: str
    stable_version: str
    canary_version: str
    canary_weight: int
    canary_replicas: int | None = None  # setCanaryScale: replicas decoupled from the weight


@dataclass(frozen=True)
class FinalizeRouting:
    """All traffic to stable, candidate track scaled away (after a promotion or a rollback)."""


@dataclass(frozen=True)
class MoveAlias:
    """Point the registry alias at `version` (the executor reads it first: a replay moves nothing)."""

    model_name: str
    alias: str
    version: str


@dataclass(frozen=True)
class TagVersion:
    model_name: str
    version: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ApplyGateJob:
    """The validation gate's Job for a candidate (deterministic name from version and attempt)."""

    version: str
    attempt: int


@dataclass(frozen=True)
class ApplyTrainJob:
    """The training Job of attempt N (deterministic name from the attempt; `trigger`: kind and why)."""

    model_name: str
    parent_version: str | None
    trigger: str
    attempt: int


@dataclass(frozen=True)
class DeleteJob:
    name: str


@dataclass(frozen=True)
class DeleteServing:
    track: str


@dataclass(frozen=True)
class DeleteService:
    """Remove the live-traffic Service (on delete)."""


@dataclass(frozen=True)
class ApplyMonitor:
    """The monitor's CronJob and its config for the serving (stable) version, from spec.monitoring."""

    model_name: str
    version: str


@dataclass(frozen=True)
class DeleteMonitor:
    """spec.monitoring removed, or the object deleted: the CronJob (its Jobs with it) and config go."""


@dataclass(frozen=True)
class ConfigureMirror:
    """Mirror `percent` % of the stable pods' requests to `target_track`'s own Service through the
    runtime's mounted live config (a ConfigMap: the stable pods reload it, they are not restarted).
    0 switches it off; a tick without this action leaves mirroring off (the executor writes the
    stable pods' live config from the decision every tick). Predictions agree within
    `relative_tolerance` (regression; labels must be equal)."""

    percent: int
    target_track: str
    relative_tolerance: float = 0.0


@dataclass(frozen=True)
class DeleteTrackService:
    """The Service of one track only (the shadow's mirror target), once mirroring is over."""

    track: str


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = (
    ApplyServing
    | ApplyService
    | ApplyPreviewService
    | DeletePreviewService
    | SetWeights
    | FinalizeRouting
    | MoveAlias
    | TagVersion
    | ApplyGateJob
    | ApplyTrainJob
    | DeleteJob
    | DeleteServing
    | DeleteService
    | ApplyMonitor
    | DeleteMonitor
    | ConfigureMirror
    | DeleteTrackService
    | EmitEvent
)
