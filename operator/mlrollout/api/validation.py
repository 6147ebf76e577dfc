"""The validation gate: checks a candidate must pass before it may touch live traffic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel, Duration, Rule, ordered

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
    uri: str = Field(min_length=1, max_length=2048)
    target: str = Field(min_length=1, max_length=256)
    format: Literal["parquet", "csv"] | None = None


class GateMetric(ApiModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    min: float | None = None
    max: float | None = None
    segment: str | None = Field(default=None, min_length=1, max_length=1024, description="A pandas query.")

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


class Validation(ApiModel):
    dataset: Dataset | None = None
    metrics: list[GateMetric] = Field(default_factory=list, max_length=32)
    champion_challenger: ChampionChallenger | None = None
    latency: LatencyCheck | None = None
    fairness: Fairness | None = None
    leakage: Leakage | None = None
    timeout: Duration = "30m"
    backoff_limit: int = Field(default=2, ge=0, le=10)

    cel_rules = (
        Rule(
            "has(self.dataset) || ((!has(self.metrics) || size(self.metrics) == 0)"
            " && !has(self.championChallenger) && !has(self.fairness))",
            "metrics, championChallenger and fairness need a dataset",
            lambda v: (
                v.dataset is not None
                or (not v.metrics and v.champion_challenger is None and v.fairness is None)
            ),
            field_path=".dataset",
        ),
    )
