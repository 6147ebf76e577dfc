"""The validation gate: checks a candidate must pass before it may touch live traffic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel, Duration, Rule, ordered
from mlrollout.api.serving import Resources

_BOUND_REQUIRED = Rule(
    "has(self.min) || has(self.max)",
    "at least one of min or max must be set",
    lambda m: m.min is not None or m.max is not None,
)
_BOUNDS_ORDERED = Rule(
    "!has(self.min) || !has(self.max) || self.min <= self.max",
    "min must not exceed max",
    lambda m: ordered(m.min, m.max),
)
BOUNDS_RULES = (_BOUND_REQUIRED, _BOUNDS_ORDERED)


class Dataset(ApiModel):
    uri: str = Field(min_length=1, max_length=2048, description="A path or fsspec URI (s3://, gs://, ...).")
    target: str = Field(min_length=1, max_length=256)
    format: Literal["parquet", "csv"] | None = None
    group: str | None = Field(
        default=None, max_length=256, description="The query id column of a ranking holdout."
    )


class GateMetric(ApiModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    min: float | None = None
    max: float | None = None
    segment: str | None = Field(default=None, min_length=1, max_length=1024, description="A pandas query.")
    k: int | None = Field(default=None, ge=1, le=10000, description="Cut-off of a ranking metric (ndcg).")

    cel_rules = BOUNDS_RULES


class ChampionChallenger(ApiModel):
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    min_delta: float = Field(default=0.0, ge=-1.0, le=1.0)


class LatencyCheck(ApiModel):
    p99_ms: float = Field(gt=0.0, le=600000.0)
    requests: int = Field(default=1000, ge=10, le=1000000)


class Fairness(ApiModel):
    sensitive_features: list[str] = Field(min_length=1, max_length=16)
    metric: Literal["demographic_parity_difference", "equalized_odds_difference"] = (
        "demographic_parity_difference"
    )
    max: float = Field(ge=0.0, le=1.0)


class Leakage(ApiModel):
    enabled: bool = True
    time_column: str | None = Field(default=None, max_length=256)
    training_data_uri: str | None = Field(
        default=None,
        max_length=2048,
        description="The training data; default: the version's lineage (tag mlrollout.training_data).",
    )
    max_overlap: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of holdout rows allowed to appear in training data."
    )
    max_association: float = Field(
        default=0.99,
        gt=0.5,
        le=1.0,
        description="A single feature predicting the target this well (ROC AUC, or normalised mutual "
        "information) is taken as leakage.",
    )


class SignatureCheck(ApiModel):
    """The candidate's input signature against the champion's: added, removed or retyped inputs fail."""

    enabled: bool = True


class Validation(ApiModel):
    dataset: Dataset | None = None
    metrics: list[GateMetric] = Field(default_factory=list, max_length=32)
    champion_challenger: ChampionChallenger | None = None
    latency: LatencyCheck | None = None
    fairness: Fairness | None = None
    leakage: Leakage | None = None
    signature: SignatureCheck | None = None
    task: Literal["classification", "regression", "ranking"] | None = Field(
        default=None, description="Default: classification for classifiers, else regression."
    )
    timeout: Duration = "30m"
    backoff_limit: int = Field(default=2, ge=0, le=10)
    resources: Resources | None = Field(default=None, description="Of the gate Job's pod.")
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        description="For cloud identities reading the holdout; the gate needs no Kubernetes API access.",
    )

    cel_rules = (
        Rule(
            "has(self.dataset) || ((!has(self.metrics) || size(self.metrics) == 0)"
            " && !has(self.championChallenger) && !has(self.fairness) && !has(self.latency)"
            " && (!has(self.leakage) || !self.leakage.enabled))",
            "metrics, championChallenger, fairness, latency and leakage need a dataset",
            lambda v: (
                v.dataset is not None
                or (
                    not v.metrics
                    and v.champion_challenger is None
                    and v.fairness is None
                    and v.latency is None
                    and (v.leakage is None or not v.leakage.enabled)
                )
            ),
            field_path=".dataset",
        ),
    )
