"""The ModelDeployment status: every bit of rollout state lives here, so a restarted operator resumes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from mlrollout.api.base import ApiModel, Percent, list_map
from mlrollout.api.conditions import Condition


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
    stable: Percent = 100
    canary: Percent = 0


class HistoryEntry(ApiModel):
    version: str
    promoted_at: datetime


class RetryState(ApiModel):
    """Backoff for a spec the operator cannot act on yet (registry down, model missing)."""

    attempts: int = Field(ge=0)
    reason: str
    next_attempt_time: datetime


class OpenStatus(ApiModel):
    """A status section another writer owns (gate Job, monitor); kept open for them to extend."""

    model_config = ConfigDict(extra="allow")


class MonitoringStatus(OpenStatus):
    verdict: str | None = Field(default=None, description="Drift verdict of the last monitor run.")
    last_run: datetime | None = None


class ModelDeploymentStatus(ApiModel):
    phase: Phase = Phase.PENDING
    observed_generation: int | None = Field(default=None, ge=0)
    model_name: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    pending_version: str | None = Field(
        default=None, description="A resolved model that differs from stable and waits for the strategy."
    )
    current_step: int | None = Field(default=None, ge=0)
    weights: Weights | None = None
    gate: OpenStatus | None = None
    analysis: OpenStatus | None = None
    monitoring: MonitoringStatus | None = None
    history: list[HistoryEntry] = Field(default_factory=list, max_length=50)
    retry: RetryState | None = None
    message: str | None = Field(default=None, max_length=4096)
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
