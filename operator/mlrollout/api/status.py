"""The ModelDeployment status: every bit of rollout state lives here, so a restarted operator resumes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel, Percent, list_map
from mlrollout.api.conditions import Condition
from mlrollout.api.experiment_status import AbTestStatus, ShadowStatus
from mlrollout.api.gate import GateStatus
from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.api.retraining_status import RetrainingStatus


class Phase(StrEnum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    DEPLOYING = "Deploying"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"
    RETRAINING = "Retraining"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class Weights(ApiModel):
    """Live traffic shares as read back from the router (approximate with replica ratio)."""

    stable: Percent = 100
    canary: Percent = 0


class HistoryEntry(ApiModel):
    """A promoted version: the last `revisionHistoryLimit` of them are the rollback window."""

    version: str
    promoted_at: datetime
    cause: str | None = Field(
        default=None,
        max_length=256,
        description="initial | canary | blueGreen | undo | retrain:<trigger> ...",
    )


class RetryState(ApiModel):
    """Backoff for a spec the operator cannot act on yet (registry down, model missing)."""

    attempts: int = Field(ge=0)
    reason: str
    next_attempt_time: datetime


MeasurementOutcome = Literal["pass", "fail", "inconclusive", "error"]
AnalysisVerdict = Literal["Running", "Passed", "Failed", "Inconclusive", "Error"]


class Measurement(ApiModel):
    """One analysis measurement of one metric."""

    metric: str = Field(max_length=63)
    outcome: MeasurementOutcome
    value: float | None = None
    requests: float | None = Field(default=None, description="Requests in the window it was taken over.")
    at: datetime
    message: str | None = Field(default=None, max_length=512)


class MetricTally(ApiModel):
    """Outcome counts of one metric in the current analysis run (each outcome has its own limit)."""

    metric: str = Field(max_length=63)
    passed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    inconclusive: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    # The inconclusive and error budgets count runs in a row: a conclusive measurement ends the pause.
    consecutive_inconclusive: int = Field(default=0, ge=0)
    consecutive_errors: int = Field(default=0, ge=0)


class AnalysisRun(ApiModel):
    """The analysis of one step (canary) or promotion stage (blue-green); bounded history."""

    stage: str = Field(max_length=63, description="step-<n> | prePromotion | postPromotion | shadow | abTest")
    started_at: datetime
    next_measurement_at: datetime | None = None
    taken: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)
    verdict: AnalysisVerdict = "Running"
    tallies: list[MetricTally] = Field(
        default_factory=list, max_length=32, json_schema_extra=list_map("metric")
    )
    history: list[Measurement] = Field(default_factory=list, max_length=20)
    message: str | None = Field(default=None, max_length=1024)


class Candidate(ApiModel):
    model_name: str
    version: str
    resolved_at: datetime | None = None


class RolloutStatus(ApiModel):
    """Every bit of state of the rollout in progress: an operator restarted anywhere resumes from it."""

    candidate: Candidate | None = None
    strategy: Literal["canary", "blueGreen", "shadow", "abTest"] | None = None
    step_index: int | None = Field(default=None, ge=0)
    step_started_at: datetime | None = None
    desired_weight: Percent | None = None
    canary_replicas: int | None = Field(
        default=None, ge=0, description="Set by a setCanaryScale step: canary replicas apart from the weight."
    )
    gate: GateStatus | None = None
    analysis: AnalysisRun | None = None
    ab_test: AbTestStatus | None = None
    shadow: ShadowStatus | None = None
    handled_request: str | None = Field(
        default=None, max_length=128, description="id of the last mlrollout.io/request acted on."
    )
    aborted_version: str | None = Field(
        default=None,
        description="A candidate rolled back or aborted: not retried until `retry` or a new version.",
    )
    last_outcome: str | None = Field(
        default=None, max_length=1024, description="How the last rollout ended, and why."
    )


class ModelDeploymentStatus(ApiModel):
    phase: Phase = Phase.PENDING
    observed_generation: int | None = Field(default=None, ge=0)
    model_name: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    pending_version: str | None = Field(
        default=None, description="Deprecated: replaced by rollout.candidate when strategies land."
    )
    current_step: int | None = Field(default=None, ge=0)
    weights: Weights | None = None
    rollout: RolloutStatus | None = None
    monitoring: MonitoringStatus | None = Field(
        default=None, description="Written by the monitor Job only; the operator never writes it."
    )
    retraining: RetrainingStatus | None = Field(
        default=None, description="The last training started by spec.retraining, and what came of it."
    )
    history: list[HistoryEntry] = Field(default_factory=list, max_length=50)
    retry: RetryState | None = None
    message: str | None = Field(default=None, max_length=4096)
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
