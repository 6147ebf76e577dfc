"""The ModelDeployment spec: one object for a model's whole production loop."""

from __future__ import annotations

from pydantic import Field

from mlrollout.api.base import ApiModel, Rule
from mlrollout.api.loop import Analysis, Monitoring, Retraining
from mlrollout.api.serving import ModelRef, Registry, Serving
from mlrollout.api.strategy import Strategy, Traffic
from mlrollout.api.validation import Validation


def _sticky_router_ok(spec: ModelDeploymentSpec) -> bool:
    ab = spec.strategy.ab_test
    if ab is None or ab.sticky is None:
        return True
    return spec.traffic is not None and spec.traffic.replica_ratio is None


def _analysis_present_when_used(spec: ModelDeploymentSpec) -> bool:
    canary = spec.strategy.canary
    if canary is None or all(step.analysis is None for step in canary.steps):
        return True
    return spec.analysis is not None


def _analysis_present_after_shadow(spec: ModelDeploymentSpec) -> bool:
    shadow = spec.strategy.shadow
    if shadow is None or shadow.continue_with is None:
        return True
    return all(step.analysis is None for step in shadow.continue_with.steps) or spec.analysis is not None


def _prometheus_for_experiments(spec: ModelDeploymentSpec) -> bool:
    return experiment_prometheus(spec) is not None or (
        spec.strategy.shadow is None and spec.strategy.ab_test is None
    )


def experiment_prometheus(spec: ModelDeploymentSpec) -> str | None:
    """Where a shadow or A/B test reads the runtime's metrics: its own prometheus, else spec.analysis's."""
    own = spec.strategy.shadow or spec.strategy.ab_test
    if own is not None and own.prometheus is not None:
        return own.prometheus.address
    return spec.analysis.prometheus.address if spec.analysis is not None else None


def _monitoring_drift_for_trigger(spec: ModelDeploymentSpec) -> bool:
    if spec.retraining is None or all(t.drift is None for t in spec.retraining.triggers):
        return True
    return spec.monitoring is not None and spec.monitoring.drift is not None


class ModelDeploymentSpec(ApiModel):
    model: ModelRef
    registry: Registry
    serving: Serving
    validation: Validation | None = None
    strategy: Strategy
    traffic: Traffic | None = Field(default=None, description="The traffic router; default replicaRatio.")
    analysis: Analysis | None = None
    monitoring: Monitoring | None = None
    retraining: Retraining | None = None
    revision_history_limit: int = Field(
        default=5, ge=1, le=50, description="Promoted versions kept for rollback."
    )

    cel_rules = (
        Rule(
            "!has(self.strategy.abTest) || !has(self.strategy.abTest.sticky)"
            " || (has(self.traffic) && !has(self.traffic.replicaRatio))",
            "sticky assignment needs a router that matches headers or cookies (gatewayAPI or istio)",
            _sticky_router_ok,
            field_path=".strategy.abTest.sticky",
        ),
        Rule(
            "!has(self.strategy.canary) || !self.strategy.canary.steps.exists(s, has(s.analysis))"
            " || has(self.analysis)",
            "an analysis step needs spec.analysis",
            _analysis_present_when_used,
            field_path=".analysis",
        ),
        Rule(
            "!has(self.strategy.shadow) || !has(self.strategy.shadow.continueWith)"
            " || !self.strategy.shadow.continueWith.steps.exists(s, has(s.analysis)) || has(self.analysis)",
            "an analysis step in shadow.continueWith needs spec.analysis",
            _analysis_present_after_shadow,
            field_path=".analysis",
        ),
        Rule(
            "(!has(self.strategy.shadow) || has(self.strategy.shadow.prometheus) || has(self.analysis))"
            " && (!has(self.strategy.abTest) || has(self.strategy.abTest.prometheus) || has(self.analysis))",
            "shadow and abTest read the runtime's metrics from Prometheus: set their prometheus or"
            " spec.analysis",
            _prometheus_for_experiments,
            field_path=".strategy",
        ),
        Rule(
            "!has(self.retraining) || !self.retraining.triggers.exists(t, has(t.drift))"
            " || (has(self.monitoring) && has(self.monitoring.drift))",
            "a drift trigger needs spec.monitoring.drift",
            _monitoring_drift_for_trigger,
            field_path=".monitoring",
        ),
    )
