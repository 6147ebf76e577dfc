"""The closed loop after a release: live analysis, monitoring and retraining."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlrollout.api.base import (
    ApiModel,
    Cron,
    DnsLabel,
    Duration,
    Rule,
    cel_exactly_one,
    exactly_one,
    list_map,
)
from mlrollout.api.serving import Resources
from mlrollout.api.validation import BOUNDS_RULES

# Built-in PromQL over the runtime's metrics (mlrollout.rollout.analysis renders them): errorRate
# (share of 5xx), latency quantiles in seconds, requestRate (per second), predictionShift (distance
# in [0, 1] between the candidate's and the stable's prediction distributions).
MetricTemplate = Literal[
    "errorRate", "latencyP50", "latencyP95", "latencyP99", "requestRate", "predictionShift"
]


class Prometheus(ApiModel):
    address: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)


class AnalysisMetric(ApiModel):
    name: DnsLabel
    template: MetricTemplate | None = None
    query: str | None = Field(
        default=None, min_length=1, max_length=4096, description="PromQL giving a scalar."
    )
    min: float | None = None
    max: float | None = None
    failure_limit: int | None = Field(default=None, ge=0, le=100)
    inconclusive_limit: int | None = Field(default=None, ge=0, le=100)
    error_limit: int | None = Field(default=None, ge=0, le=100)

    cel_rules = (
        Rule(
            "has(self.template) != has(self.query)",
            "exactly one of template or query must be set",
            lambda m: exactly_one(m.template, m.query),
        ),
        *BOUNDS_RULES,
    )


class Analysis(ApiModel):
    prometheus: Prometheus
    interval: Duration = "1m"
    count: int = Field(default=5, ge=1, le=100)
    min_requests: int = Field(default=50, ge=0)
    failure_limit: int = Field(default=0, ge=0, le=100)
    inconclusive_limit: int = Field(default=2, ge=0, le=100)
    error_limit: int = Field(default=2, ge=0, le=100)
    metrics: list[AnalysisMetric] = Field(min_length=1, max_length=32, json_schema_extra=list_map("name"))

    cel_rules = (
        Rule(
            "self.metrics.all(m, self.metrics.exists_one(n, n.name == m.name))",
            "metric names must be unique",
            lambda a: len({m.name for m in a.metrics}) == len(a.metrics),
            field_path=".metrics",
        ),
    )


class DriftCheck(ApiModel):
    enabled: bool = True
    p_value: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_effect_size: float = Field(default=0.1, ge=0.0)
    min_samples: int = Field(default=200, ge=1)
    columns: list[str] | None = Field(default=None, max_length=1024)
    window: Duration = "1h"


class PerformanceCheck(ApiModel):
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    min: float | None = None
    max: float | None = None
    label_delay: Duration = "1h"
    min_samples: int = Field(default=100, ge=1)

    cel_rules = BOUNDS_RULES


class Monitoring(ApiModel):
    schedule: Cron = "0 * * * *"
    reference_uri: str | None = Field(default=None, max_length=2048)
    inference_log_uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^(/|[a-z][a-z0-9+.-]*://)\S*$",
        description=(
            "Where the serving pods write their inference log and the monitor reads it: an fsspec URI "
            "(s3://bucket/prefix, credentials from spec.registry.credentialsSecret) or an absolute "
            "local path (a hostPath volume: single-node clusters and demos only)."
        ),
    )
    drift: DriftCheck | None = None
    performance: PerformanceCheck | None = None
    prometheus: Prometheus | None = Field(
        default=None,
        description="Where the monitor reads latency and throughput per track (default: spec.analysis's).",
    )
    suspend: bool = False


class ScheduleTrigger(ApiModel):
    cron: Cron = Field(description="A 5-field cron expression, evaluated in UTC.")


class MetricBound(ApiModel):
    """The monitored metric (status.monitoring.performance, from delayed labels) past a bound."""

    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    below: float | None = Field(default=None, description="Holds when the metric is below (e.g. roc_auc).")
    above: float | None = Field(default=None, description="Holds when the metric is above (e.g. rmse).")
    min_samples: int = Field(default=100, ge=1, description="Labelled rows the value must rest on.")

    cel_rules = (
        Rule(
            cel_exactly_one("below", "above"),
            "set exactly one of below or above",
            lambda t: exactly_one(t.below, t.above),
        ),
    )


class PerformanceTrigger(MetricBound):
    cooldown: Duration = Field(default="24h", description="Time after a training starts before another.")


class DriftConfirmation(ApiModel):
    """Input drift alone may be benign (the model copes): retrain only if one of these also holds."""

    prediction_drift: bool = Field(
        default=False, description="Retrain when predictions drifted too (status.monitoring.predictionDrift)."
    )
    performance: MetricBound | None = Field(
        default=None, description="Retrain when the monitored metric is also past this bound."
    )

    cel_rules = (
        Rule(
            "self.predictionDrift || has(self.performance)",
            "confirm needs predictionDrift: true or performance",
            lambda c: c.prediction_drift or c.performance is not None,
        ),
    )


class DriftTrigger(ApiModel):
    cooldown: Duration = Field(default="24h", description="Time after a training starts before another.")
    min_samples: int = Field(default=500, ge=1, description="Rows the monitor's window must hold.")
    confirm: DriftConfirmation | None = None


class RetrainTrigger(ApiModel):
    schedule: ScheduleTrigger | None = None
    drift: DriftTrigger | None = None
    performance: PerformanceTrigger | None = None

    cel_rules = (
        Rule(
            cel_exactly_one("schedule", "drift", "performance"),
            "each trigger sets exactly one of schedule, drift, performance",
            lambda t: exactly_one(t.schedule, t.drift, t.performance),
        ),
    )


Estimator = Literal["logistic_regression", "random_forest", "gradient_boosting", "linear_regression", "ridge"]


TrainMetric = Literal["roc_auc", "accuracy", "f1", "log_loss", "r2", "rmse", "mae"]


class BuiltinTrainer(ApiModel):
    """scikit-learn pipeline (numeric columns scaled, categorical one-hot) tuned by an Optuna study."""

    estimator: Estimator
    target: str = Field(min_length=1, max_length=256)
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Default: from the estimator, else from the target column."
    )
    features: list[str] | None = Field(
        default=None, max_length=1024, description="Input columns; default: all but target and exclude."
    )
    exclude: list[str] = Field(
        default_factory=list, max_length=1024, description="Columns never used as inputs (ids, timestamps)."
    )
    metric: TrainMetric | None = Field(
        default=None,
        description="Objective on the validation split: roc_auc (default, classification), accuracy, f1, "
        "log_loss, r2 (default, regression), rmse, mae.",
    )
    search: Literal["tpe", "random", "grid"] = "tpe"
    trials: int = Field(default=20, ge=1, le=1000)
    timeout: Duration | None = Field(default=None, description="Stop the search after this long.")
    parallelism: int = Field(
        default=1, ge=1, le=64, description="Pods running trials of one study at once (needs storage)."
    )
    storage: str | None = Field(
        default=None,
        max_length=2048,
        description="Optuna RDB storage URL shared by parallel pods (postgresql://..., mysql://..., or "
        "sqlite:///path on a shared volume); ${VAR} is taken from the pod's env (the credentials Secret).",
    )
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    reference_rows: int = Field(
        default=5000, ge=10, le=1_000_000, description="Rows of the reference snapshot for the monitor."
    )
    seed: int = Field(default=0, ge=0)

    cel_rules = (
        Rule(
            "self.parallelism == 1 || has(self.storage)",
            "parallel trials need a shared storage",
            lambda b: b.parallelism == 1 or b.storage is not None,
            field_path=".storage",
        ),
    )


class TrainJob(ApiModel):
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=r"^\S+$",
        description="Image of the training pod; default spec.serving.image (it runs the built-in trainer).",
    )
    command: list[str] | None = Field(default=None, min_length=1, max_length=64)
    builtin: BuiltinTrainer | None = None
    dataset_uri: str = Field(min_length=1, max_length=2048)
    reference_dir: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the built-in trainer also writes the monitor's reference snapshot "
        "(<dir>/<model>-<dataHash>.parquet); it is always logged to MLflow.",
    )
    resources: Resources | None = None
    timeout: Duration = "2h"
    backoff_limit: int = Field(default=1, ge=0, le=10)
    service_account_name: str | None = Field(default=None, max_length=253)

    cel_rules = (
        Rule(
            "has(self.command) != has(self.builtin)",
            "exactly one of command or builtin must be set",
            lambda j: exactly_one(j.command, j.builtin),
        ),
        Rule(
            "!has(self.command) || has(self.image)",
            "a custom command needs an image",
            lambda j: j.command is None or j.image is not None,
            field_path=".image",
        ),
    )


class Retraining(ApiModel):
    triggers: list[RetrainTrigger] = Field(min_length=1, max_length=8)
    job: TrainJob
    auto_deploy: bool = True
