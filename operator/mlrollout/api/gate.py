"""What a gate Job reports, and how the operator keeps it in status.

The Job writes a `GateReport` as compact JSON to its termination message (at most 4 KiB, so the
full report goes to MLflow); the operator reads it back into `status.rollout.gate`. "Could not run"
(outcome `error`: retried with backoff) is never a rejection and never a pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel

CheckVerdict = Literal["passed", "failed", "warning", "error", "skipped"]
GateOutcome = Literal["passed", "failed", "error"]

# The termination message a pod may write (Kubernetes truncates longer ones).
TERMINATION_MESSAGE_LIMIT = 4096


class GateCheck(ApiModel):
    """One check: e.g. name `metric:roc_auc`, `metric:precision[plan == 'premium']`, `leakage:overlap`."""

    name: str = Field(max_length=256)
    verdict: CheckVerdict
    value: float | None = None
    threshold: float | None = None
    message: str | None = Field(default=None, max_length=512)


class GateReport(ApiModel):
    """The termination message of a gate Job (compact JSON, by alias)."""

    outcome: GateOutcome
    model_name: str
    version: str
    checks: list[GateCheck] = Field(default_factory=list, max_length=64)
    reason: str | None = Field(default=None, max_length=1024, description="Why it could not run / failed.")
    report_uri: str | None = Field(default=None, max_length=2048, description="The full report in MLflow.")


class GateStatus(ApiModel):
    """`status.rollout.gate`: the gate of the current candidate, as the operator last saw it."""

    version: str
    job: str = Field(description="The gate Job's name (deterministic: includes version and attempt).")
    attempt: int = Field(default=1, ge=1)
    phase: Literal["Running", "Passed", "Failed", "Error"] = "Running"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    checks: list[GateCheck] = Field(default_factory=list, max_length=64)
    reason: str | None = Field(default=None, max_length=1024)
    report_uri: str | None = Field(default=None, max_length=2048)
    next_attempt_at: datetime | None = None
