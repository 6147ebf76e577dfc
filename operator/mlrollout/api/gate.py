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
from mlrollout.api.validation import Validation

CheckVerdict = Literal["passed", "failed", "warning", "error", "skipped"]
GateOutcome = Literal["passed", "failed", "error"]
CONFIG_ENV = "MLROLLOUT_GATE_CONFIG"


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


class GateJobConfig(ApiModel):
    """What the operator hands the gate Job (JSON in env MLROLLOUT_GATE_CONFIG, or a file)."""

    model_name: str
    version: str
    tracking_uri: str
    champion_alias: str = "champion"
    trusted_types: list[str] = Field(default_factory=list)
    allow_code: bool = Field(default=False, description="spec.serving.allowCode: pyfunc models may load.")
    validation: Validation
    deployment: str = Field(default="", description="namespace/name of the ModelDeployment, for the report.")
    attempt: int = Field(default=1, ge=1)


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
