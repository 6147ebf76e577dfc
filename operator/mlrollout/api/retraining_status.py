"""`status.retraining`: the operator's record of retraining, so a restarted operator never trains twice.

Written by the operator only (the training Job reports through its registered version and its exit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel

TriggerKind = Literal["schedule", "drift", "performance", "manual"]
# Idle: nothing runs. Training: a Job runs. Trained: it registered `version`, which now goes through
# the gates and the rollout like any other version. Failed: the Job failed; retried after a backoff.
TrainingState = Literal["Idle", "Training", "Trained", "Failed"]


class RetrainingStatus(ApiModel):
    state: TrainingState = "Idle"
    trigger: TriggerKind | None = Field(default=None, description="What started the last training.")
    reason: str | None = Field(
        default=None, max_length=1024, description="Why: the signal, its value and the threshold."
    )
    attempt: int = Field(default=0, ge=0, description="Trainings started so far (names the Job).")
    job: str | None = Field(default=None, max_length=63)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    evidence_at: datetime | None = Field(
        default=None,
        description="lastRun of the monitor run the last training acted on: drift and performance "
        "triggers wait for a newer run (a rejected candidate never loops).",
    )
    version: str | None = Field(default=None, description="The version the last training registered.")
    failures: int = Field(default=0, ge=0, description="Failed trainings in a row.")
    next_attempt_at: datetime | None = None
    message: str | None = Field(default=None, max_length=1024)
    benign_drift: str | None = Field(
        default=None,
        max_length=1024,
        description="Why the last drift verdict did not retrain (the policy found it benign): the "
        "drifted columns and the confirmations that did not hold.",
    )
    approved_by: str | None = Field(
        default=None,
        max_length=128,
        description="id of the `approve` request that let `version` go to its gates (autoDeploy: false).",
    )
