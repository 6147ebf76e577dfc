"""Status of the two experiment strategies: status.rollout.abTest and status.rollout.shadow.

Numbers only, no prose that code parses: the operator resumes an A/B test or a shadow window from
these fields after a restart (the mSPRT's always-valid p-value is a running minimum kept here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel

AbDecision = Literal["Running", "CandidateWins", "StableWins", "NoSignificantDifference", "NoData", "Invalid"]
Assignment = Literal["perRequest", "stickyHeader", "stickyCookie"]


class ArmSizes(ApiModel):
    stable: int = Field(ge=0)
    candidate: int = Field(ge=0)


class AbPlan(ApiModel):
    """The sample-size plan, fixed once made (from spec.baseline, or from the burn-in)."""

    source: Literal["spec", "burnIn"]
    baseline: float | None = Field(default=None, description="Proportion: the stable rate planned for.")
    variance: float = Field(ge=0.0, description="Per-request variance of the metric planned for.")
    mixing_variance: float = Field(gt=0.0, description="tau^2 of the mSPRT's normal mixture (MDE^2).")
    fixed_horizon: ArmSizes = Field(description="Requests per arm the fixed-horizon test needs.")
    sequential_max: ArmSizes = Field(
        description="Requests per arm after which the mSPRT stops with no significant difference."
    )
    planned_at: datetime


class ArmSummary(ApiModel):
    requests: float = Field(ge=0.0)
    mean: float | None = Field(default=None, description="Conversion rate, or mean value per request.")


class AbAnalysis(ApiModel):
    """One analysis of the business metric: candidate minus stable."""

    at: datetime
    stable: ArmSummary
    candidate: ArmSummary
    estimate: float | None = None
    ci_low: float | None = Field(default=None, description="Confidence interval (always valid for msprt).")
    ci_high: float | None = None
    p_value: float | None = Field(default=None, description="msprt: always-valid p (running minimum).")
    e_value: float | None = Field(default=None, description="msprt: the mixture likelihood ratio now.")
    progress: float = Field(default=0.0, ge=0.0, description="Share of the planned sample reached.")


class AbTestStatus(ApiModel):
    test: Literal["msprt", "fixedHorizon"]
    metric: str = Field(max_length=63)
    kind: Literal["proportion", "mean"]
    assignment: Assignment = Field(
        description="perRequest with the replica-ratio router: a user may see both variants."
    )
    started_at: datetime
    next_analysis_at: datetime | None = None
    plan: AbPlan | None = None
    analyses: int = Field(default=0, ge=0)
    p_value: float = Field(default=1.0, ge=0.0, le=1.0, description="Always-valid p over all analyses.")
    decision: AbDecision = "Running"
    waiting_for: Literal["data", "burnIn", "variance"] | None = Field(
        default=None, description="Why the last analysis could not test: no data, burn-in, no variance."
    )
    history: list[AbAnalysis] = Field(default_factory=list, max_length=20)
    message: str | None = Field(default=None, max_length=1024)


ShadowVerdict = Literal["Running", "Passed", "Failed", "Inconclusive"]


class ShadowStatus(ApiModel):
    """The shadow window's comparison of the candidate with stable on mirrored live traffic."""

    started_at: datetime | None = Field(default=None, description="When mirroring was confirmed on.")
    verdict: ShadowVerdict = "Running"
    mirrored: float = Field(default=0.0, ge=0.0, description="Requests mirrored to the candidate.")
    errors: float = Field(default=0.0, ge=0.0)
    compared: float = Field(default=0.0, ge=0.0, description="Prediction rows compared.")
    agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    stable_latency_seconds: float | None = Field(default=None, ge=0.0)
    candidate_latency_seconds: float | None = Field(default=None, ge=0.0)
    latency_ratio: float | None = Field(default=None, ge=0.0)
    message: str | None = Field(default=None, max_length=1024)
