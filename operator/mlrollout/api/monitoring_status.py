"""`status.monitoring`: written by the monitor Job only (through the status subresource).

The operator never writes this section; it reads it (verdicts feed retraining and metrics).
The monitor helper owns the fields below and may extend them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel

DriftVerdict = Literal["NoDrift", "Drift", "Insufficient", "Error"]


class ColumnDrift(ApiModel):
    column: str = Field(max_length=256)
    test: str = Field(max_length=64)
    statistic: float
    p_value: float | None = None
    effect_size: float | None = None
    drifted: bool


class TrackServing(ApiModel):
    """Serving health of one track and version over the monitor's window, from Prometheus."""

    track: str = Field(max_length=32)
    version: str = Field(max_length=64)
    latency_p50: float | None = Field(default=None, description="Seconds.")
    latency_p95: float | None = Field(default=None, description="Seconds.")
    latency_p99: float | None = Field(default=None, description="Seconds.")
    requests_per_second: float | None = None


class MonitoringStatus(ApiModel):
    verdict: DriftVerdict | None = Field(default=None, description="Drift verdict of the last monitor run.")
    version: str | None = Field(default=None, description="The serving version the verdict is about.")
    last_run: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    samples: int | None = Field(default=None, ge=0)
    drift_share: float | None = Field(default=None, ge=0.0, le=1.0)
    columns: list[ColumnDrift] = Field(default_factory=list, max_length=32)
    prediction_drift: ColumnDrift | None = None
    performance: dict[str, float] | None = Field(
        default=None,
        description="accuracy, f1, roc_auc (classification) or mae, rmse, r2 over labelled rows.",
    )
    labelled_samples: int | None = Field(default=None, ge=0)
    performance_window_end: datetime | None = Field(
        default=None, description="Predictions up to now - labelDelay are joined to their labels."
    )
    importance_stability: float | None = Field(
        default=None,
        description="Spearman's rho of permutation importances, labelled window vs training time; "
        "absent below minSamples labelled rows or without the version's training-time importance.",
    )
    serving: list[TrackServing] = Field(
        default_factory=list,
        max_length=16,
        description="Latency quantiles and throughput per track and version over the window.",
    )
    serving_message: str | None = Field(
        default=None,
        max_length=512,
        description="Why serving figures are missing (no Prometheus address, Prometheus unreachable).",
    )
    report_uri: str | None = Field(default=None, max_length=2048)
    reason: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Z][A-Za-z]*$",
        description="Why the last run gave no verdict (NoReference, BadReference, BadWindow, "
        "ColumnsMismatch, StoreUnreachable, InsufficientData); the previous verdict is kept.",
    )
    message: str | None = Field(default=None, max_length=1024)
