"""How a new version reaches traffic: exactly one of canary, blueGreen, shadow, abTest; and the router."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlrollout.api.base import ApiModel, DnsLabel, Duration, Percent, Rule, cel_exactly_one, exactly_one
from mlrollout.api.loop import Prometheus


class Pause(ApiModel):
    duration: Duration | None = Field(default=None, description="Without a duration: until resumed by hand.")


class StepAnalysis(ApiModel):
    metrics: list[DnsLabel] = Field(
        default_factory=list, max_length=32, description="Names from spec.analysis.metrics; empty means all."
    )
    count: int | None = Field(
        default=None, ge=1, le=100, description="Measurements; default spec.analysis.count."
    )


class CanaryScale(ApiModel):
    replicas: int | None = Field(default=None, ge=0, le=1000)
    weight: Percent | None = None
    match_traffic_weight: bool | None = None

    cel_rules = (
        Rule(
            cel_exactly_one("replicas", "weight", "matchTrafficWeight"),
            "exactly one of replicas, weight, matchTrafficWeight must be set",
            lambda s: exactly_one(s.replicas, s.weight, s.match_traffic_weight),
        ),
    )


class CanaryStep(ApiModel):
    set_weight: Percent | None = None
    pause: Pause | None = None
    analysis: StepAnalysis | None = None
    set_canary_scale: CanaryScale | None = None

    cel_rules = (
        Rule(
            cel_exactly_one("setWeight", "pause", "analysis", "setCanaryScale"),
            "each step sets exactly one of setWeight, pause, analysis, setCanaryScale",
            lambda s: exactly_one(s.set_weight, s.pause, s.analysis, s.set_canary_scale),
        ),
    )


def _weights_non_decreasing(canary: Canary) -> bool:
    weights = [s.set_weight for s in canary.steps if s.set_weight is not None]
    return weights == sorted(weights)


class Canary(ApiModel):
    steps: list[CanaryStep] = Field(min_length=1, max_length=64)

    cel_rules = (
        Rule(
            "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
            "setWeight values must be non-decreasing",
            _weights_non_decreasing,
            field_path=".steps",
        ),
    )


class BlueGreen(ApiModel):
    auto_promotion: bool = False
    auto_promotion_delay: Duration | None = None
    preview_replicas: int | None = Field(default=None, ge=0, le=1000)
    pre_promotion_analysis: StepAnalysis | None = None
    post_promotion_analysis: StepAnalysis | None = None
    scale_down_delay: Duration = "30s"

    cel_rules = (
        Rule(
            "!has(self.autoPromotionDelay) || self.autoPromotion",
            "autoPromotionDelay needs autoPromotion: true",
            lambda b: b.auto_promotion_delay is None or b.auto_promotion,
            field_path=".autoPromotionDelay",
        ),
    )


class Shadow(ApiModel):
    mirror_percent: int = Field(default=100, ge=1, le=100)
    duration: Duration = "10m"
    min_requests: int = Field(default=100, ge=1)
    max_disagreement: float | None = Field(default=None, ge=0.0, le=1.0)
    max_latency_ratio: float | None = Field(
        default=None, gt=0.0, le=100.0, description="Candidate p99 latency over stable's, at most."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of mirrored requests the candidate may fail."
    )
    relative_tolerance: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Regression: numeric predictions within this relative error agree (labels: equal).",
    )
    continue_with: Canary | None = Field(
        default=None, description="Continue into this canary instead of promoting."
    )
    prometheus: Prometheus | None = Field(
        default=None,
        description="Where the runtime's metrics are read (default spec.analysis.prometheus).",
    )


class StickyAssignment(ApiModel):
    header: str | None = Field(default=None, min_length=1, max_length=256)
    cookie: str | None = Field(default=None, min_length=1, max_length=256)

    cel_rules = (
        Rule(
            cel_exactly_one("header", "cookie"),
            "exactly one of header or cookie must be set",
            lambda s: exactly_one(s.header, s.cookie),
        ),
    )


class BusinessMetric(ApiModel):
    name: DnsLabel
    kind: Literal["proportion", "mean"] = "proportion"
    higher_is_better: bool = True


def _effect_inside_unit_interval(ab: AbTest) -> bool:
    if ab.baseline is None or ab.metric.kind != "proportion":
        return True
    moved = ab.baseline + (
        ab.minimum_detectable_effect if ab.metric.higher_is_better else -ab.minimum_detectable_effect
    )
    return 0.0 < moved < 1.0


class AbTest(ApiModel):
    candidate_weight: int = Field(default=50, ge=1, le=99)
    metric: BusinessMetric
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1.0)
    minimum_detectable_effect: float = Field(
        gt=0.0,
        description="Absolute, in the metric's units: 0.02 = two points of conversion rate.",
    )
    baseline: float | None = Field(default=None, gt=0.0, lt=1.0, description="Expected baseline proportion.")
    test: Literal["msprt", "fixedHorizon"] = "msprt"
    max_duration: Duration = "7d"
    sticky: StickyAssignment | None = None
    prometheus: Prometheus | None = Field(
        default=None,
        description="Where the runtime's metrics are read (default spec.analysis.prometheus).",
    )

    cel_rules = (
        Rule(
            "!has(self.baseline) || self.metric.kind != 'proportion' || (self.metric.higherIsBetter"
            " ? self.baseline + self.minimumDetectableEffect < 1.0"
            " : self.baseline - self.minimumDetectableEffect > 0.0)",
            "baseline plus (or minus) minimumDetectableEffect must stay inside (0, 1) for a proportion",
            _effect_inside_unit_interval,
            field_path=".minimumDetectableEffect",
        ),
    )


class Strategy(ApiModel):
    canary: Canary | None = None
    blue_green: BlueGreen | None = None
    shadow: Shadow | None = None
    ab_test: AbTest | None = None

    cel_rules = (
        Rule(
            cel_exactly_one("canary", "blueGreen", "shadow", "abTest"),
            "exactly one of canary, blueGreen, shadow, abTest must be set",
            lambda s: exactly_one(s.canary, s.blue_green, s.shadow, s.ab_test),
        ),
    )


class ReplicaRatio(ApiModel):
    """Weights by replica counts behind one Service: needs no mesh, approximate by nature."""


class GatewayApi(ApiModel):
    http_route: DnsLabel
    port: int | None = Field(default=None, ge=1, le=65535)


class Istio(ApiModel):
    virtual_service: DnsLabel
    route_name: str | None = Field(default=None, max_length=253)


class Traffic(ApiModel):
    replica_ratio: ReplicaRatio | None = None
    gateway_api: GatewayApi | None = Field(default=None, alias="gatewayAPI")
    istio: Istio | None = None

    cel_rules = (
        Rule(
            cel_exactly_one("replicaRatio", "gatewayAPI", "istio"),
            "exactly one router must be set: replicaRatio, gatewayAPI or istio",
            lambda t: exactly_one(t.replica_ratio, t.gateway_api, t.istio),
        ),
    )
