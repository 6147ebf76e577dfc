"""The first half of observation, pure: which analysis queries this tick needs (none unless due)."""

from __future__ import annotations

from datetime import datetime

from mlrollout.api.loop import AnalysisMetric
from mlrollout.api.names import TRACK_CANARY
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus
from mlrollout.rollout import analysis
from mlrollout.rollout.analysis import MetricQueries, QueryContext


def analysis_queries(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, namespace: str, name: str, now: datetime
) -> list[tuple[AnalysisMetric, MetricQueries]]:
    rollout = status.rollout
    canary = spec.strategy.canary
    if spec.analysis is None or canary is None or rollout is None or rollout.candidate is None:
        return []
    run, index = rollout.analysis, rollout.step_index or 0
    if run is None or run.stage != f"step-{index}" or index >= len(canary.steps):
        return []
    step = canary.steps[index].analysis
    if step is None or not analysis.is_due(run, now):
        return []
    ctx = QueryContext(
        namespace=namespace,
        name=name,
        model=rollout.candidate.model_name,
        version=rollout.candidate.version,
        track=TRACK_CANARY,
        stable_version=status.stable_version,
        interval=spec.analysis.interval,
    )
    chosen = [m for m in spec.analysis.metrics if not step.metrics or m.name in step.metrics]
    return [(metric, analysis.queries(metric, ctx)) for metric in chosen]
