"""What the reconciler saw of the world this tick: the input of decide(), plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mlrollout.api.gate import GateReport
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.status import Weights
from mlrollout.api.training import TrainResult
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.experiment_observed import AbObservation, ShadowObservation

RegistryReason = Literal["ModelNotFound", "RegistryUnreachable", "RegistryError"]


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: str
    alias: str | None = None


@dataclass(frozen=True)
class RegistryProblem:
    reason: RegistryReason
    message: str


@dataclass(frozen=True)
class TrackState:
    """One serving Deployment as read back from the API server."""

    version: str | None
    desired_replicas: int
    available_replicas: int = 0
    updated_replicas: int = 0
    generation: int = 1
    observed_generation: int = 0
    in_sync: bool = True  # its template matches what the spec asks for now

    @property
    def rolled_out(self) -> bool:
        return (
            self.in_sync
            and self.observed_generation >= self.generation
            and self.updated_replicas >= self.desired_replicas
        )

    @property
    def available(self) -> bool:
        return self.available_replicas >= self.desired_replicas


@dataclass(frozen=True)
class Observed:
    generation: int
    model: ResolvedModel | RegistryProblem | None  # None: not consulted (while deleting)
    tracks: Mapping[str, TrackState] = field(default_factory=dict)
    service_present: bool = False
    paused: bool = False
    deleting: bool = False
    request: ManualRequest | InvalidRequest | None = None  # the mlrollout.io/request annotation
    samples: tuple[Sample, ...] = ()  # taken this tick for the analysis run that was due
    weights: Weights | None = None  # read back from the traffic router
    active_track: str | None = None  # the live Service's track selector as read back (None: every track)
    preview_service_present: bool = False
    shadow_service_present: bool = False  # the shadow track's own Service (the mirror target)
    hpa_tracks: frozenset[str] = frozenset()  # tracks whose replicas an HPA owns
    ab: AbObservation | None = None  # per-variant business metric since the A/B test started
    shadow: ShadowObservation | None = None  # mirroring read back and compared since the window began
    # (metric, Prometheus's parse error) of analysis queries checked before the candidate's first traffic
    query_problems: tuple[tuple[str, str], ...] = ()
    name: str = ""  # the ModelDeployment's name (children's deterministic names)
    gate: GateReport | JobRunning | JobCouldNotRun | None = None  # the recorded gate Job, read back
    monitor_present: bool = False  # the monitor's CronJob or its ConfigMap exists
    training: TrainResult | None = None  # the running training Job (status.retraining.job), read back
    created_at: datetime | None = None  # the object's creationTimestamp (anchors a retraining schedule)


RequestAction = Literal["promote", "promote-full", "abort", "retry", "undo", "approve"]


@dataclass(frozen=True)
class ManualRequest:
    id: str
    action: RequestAction
    version: str | None = None


@dataclass(frozen=True)
class InvalidRequest:
    """An annotation that does not parse: reported once per distinct text, never acted on."""

    id: str
    message: str
