"""The first half of observation, pure: which analysis queries this tick needs (none unless due)."""

from __future__ import annotations

from datetime import datetime

from mlrollout.api.loop import AnalysisMetric
from mlrollout.api.names import TRACK_CANARY, TRACK_PREVIEW
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, RolloutStatus
from mlrollout.api.strategy import StepAnalysis
from mlrollout.rollout import analysis, bluegreen, experiments
from mlrollout.rollout.analysis import MetricQueries, QueryContext


def analysis_queries(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, namespace: str, name: str, now: datetime
) -> list[tuple[AnalysisMetric, MetricQueries]]:
    rollout = status.rollout
    if spec.analysis is None or rollout is None or rollout.candidate is None or rollout.analysis is None:
        return []
    run, index = rollout.analysis, rollout.step_index or 0
    stage: tuple[str, StepAnalysis | None, str] | None = None
    canary = spec.strategy.canary or experiments.canary_after_shadow(spec, rollout)
    bg = spec.strategy.blue_green
    if canary is not None and index < len(canary.steps):
        stage = (f"step-{index}", canary.steps[index].analysis, TRACK_CANARY)
    elif bg is not None and index == bluegreen.PRE_ANALYSIS:
        stage = ("prePromotion", bg.pre_promotion_analysis, TRACK_PREVIEW)
    elif bg is not None and index == bluegreen.POST_ANALYSIS:
        stage = ("postPromotion", bg.post_promotion_analysis, TRACK_PREVIEW)
    if stage is None or stage[1] is None or run.stage != stage[0] or not analysis.is_due(run, now):
        return []
    step, track = stage[1], stage[2]
    ctx = QueryContext(
        namespace=namespace,
        name=name,
        model=rollout.candidate.model_name,
        version=rollout.candidate.version,
        track=track,
        stable_version=status.stable_version,
        interval=spec.analysis.interval,
    )
    chosen = [m for m in spec.analysis.metrics if not step.metrics or m.name in step.metrics]
    return [(metric, analysis.queries(metric, ctx)) for metric in chosen]


def before_traffic(status: ModelDeploymentStatus, version: str) -> bool:
    """`version` is a candidate that no traffic has reached yet (its rollout has not left step 0)."""
    if version in (status.stable_version, (status.rollout or RolloutStatus()).aborted_version):
        return False
    rollout = status.rollout
    if rollout is None or rollout.candidate is None or rollout.candidate.version != version:
        return True  # this tick makes it the candidate
    return (rollout.step_index or 0) == 0 and not rollout.desired_weight and rollout.analysis is None


def queries_to_check(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    version: str,
    model: str,
    namespace: str,
    name: str,
) -> list[tuple[str, str]]:
    """(metric, PromQL) of every analysis metric, to be parsed by Prometheus before a candidate's
    first traffic: a query that cannot parse then holds the rollout instead of surfacing mid-canary."""
    if spec.analysis is None or not before_traffic(status, version):
        return []
    ctx = QueryContext(
        namespace=namespace,
        name=name,
        model=model,
        version=version,
        track=TRACK_PREVIEW if spec.strategy.blue_green is not None else TRACK_CANARY,
        stable_version=status.stable_version,
        interval=spec.analysis.interval,
    )
    return [(metric.name, analysis.queries(metric, ctx).value) for metric in spec.analysis.metrics]
