"""The first half of observing a shadow or an A/B test, pure: which PromQL this tick needs (none unless
the experiment runs, and for an A/B test only when an analysis is due), and how the numbers Prometheus
returns become Observed.shadow / Observed.ab.

Counts are `increase(...[<seconds since the experiment started>s])` over the runtime's own metric
names (mlrollout.runtime.metric_names): counters of pods that restarted are handled by increase(),
and traffic from before the experiment does not count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

from mlrollout.api.base import parse_duration
from mlrollout.api.experiment_status import AbTestStatus
from mlrollout.api.names import TRACK_CANARY, TRACK_SHADOW, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus
from mlrollout.rollout import experiments
from mlrollout.rollout.experiment_observed import AbObservation, ArmCounts, ShadowObservation
from mlrollout.runtime import metric_names as n

Number = float | None


@dataclass(frozen=True)
class ShadowQueries:
    mirror: str  # the share the stable pods mirror now (their gauge: the live config as applied)
    mirrored: str | None = None  # the rest only once the window started
    errors: str | None = None
    compared: str | None = None
    agreed: str | None = None
    stable_p99: str | None = None
    candidate_p99: str | None = None


@dataclass(frozen=True)
class ArmQueries:
    requests: str
    events: str  # feedback events of the metric: none at all in both arms means no data
    value_sum: str
    value_squares: str


@dataclass(frozen=True)
class AbQueries:
    metric: str
    stable: ArmQueries
    candidate: ArmQueries


def plan(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, namespace: str, now: datetime
) -> ShadowQueries | AbQueries | None:
    rollout = status.rollout
    if rollout is None or rollout.candidate is None or status.model_name is None:
        return None
    stable = _selector(namespace, status.model_name, status.stable_version, TRACK_STABLE)
    candidate_version = rollout.candidate.version
    if (
        spec.strategy.shadow is not None
        and rollout.strategy == "shadow"
        and experiments.canary_after_shadow(spec, rollout) is None
    ):
        mirror = f"min({n.MIRROR_FRACTION}{stable})"
        if rollout.shadow is None or rollout.shadow.started_at is None:
            return ShadowQueries(mirror=mirror)
        window = _window(rollout.shadow.started_at, now)
        shadow = _selector(namespace, rollout.candidate.model_name, candidate_version, TRACK_SHADOW)

        def count(metric: str, extra: str = "") -> str:
            return f"sum(increase({metric}{_with(stable, extra)}[{window}]))"

        return ShadowQueries(
            mirror=mirror,
            mirrored=count(n.SHADOW_REQUESTS_TOTAL, f'{n.LABEL_RESULT}!="dropped"'),
            errors=count(n.SHADOW_REQUESTS_TOTAL, f'{n.LABEL_RESULT}="error"'),
            compared=count(n.SHADOW_COMPARED_TOTAL),
            agreed=count(n.SHADOW_AGREEMENT_TOTAL),
            stable_p99=_p99(stable, window),
            candidate_p99=_p99(shadow, window),
        )
    ab, test = spec.strategy.ab_test, rollout.ab_test
    if ab is None or test is None or test.decision != "Running":
        return None
    if test.next_analysis_at is not None and now < test.next_analysis_at and not _timed_out(spec, test, now):
        return None
    window = _window(test.started_at, now)
    metric = ab.metric.name
    candidate = _selector(namespace, rollout.candidate.model_name, candidate_version, TRACK_CANARY)
    return AbQueries(metric, _arm(stable, metric, window), _arm(candidate, metric, window))


def shadow_observation(queries: ShadowQueries, answer: Callable[[str], Number]) -> ShadowObservation:
    """`answer` runs one query (None: no data); it may raise, which the caller turns into no data."""
    fraction = answer(queries.mirror)
    percent = None if fraction is None or math.isnan(fraction) else round(100 * fraction)
    if queries.mirrored is None:
        return ShadowObservation(mirror_percent=percent)
    values = {
        name: _finite(answer(q)) if (q := getattr(queries, name)) is not None else None
        for name in ("mirrored", "errors", "compared", "agreed", "stable_p99", "candidate_p99")
    }
    return ShadowObservation(
        mirror_percent=percent,
        mirrored=values["mirrored"] or 0.0,
        errors=values["errors"] or 0.0,
        compared=values["compared"] or 0.0,
        agreed=values["agreed"] or 0.0,
        stable_latency_seconds=values["stable_p99"],
        candidate_latency_seconds=values["candidate_p99"],
    )


def ab_observation(queries: AbQueries, answer: Callable[[str], Number]) -> AbObservation | None:
    """None when the metric has no data at all (no request or no feedback series in either arm)."""
    arms = []
    for arm in (queries.stable, queries.candidate):
        got = {f.name: _finite(answer(getattr(arm, f.name))) for f in fields(ArmQueries)}
        arms.append(got)
    if any(a["requests"] is None for a in arms) or all(a["events"] is None for a in arms):
        return None
    stable, candidate = (
        ArmCounts(
            requests=a["requests"] or 0.0,
            outcomes=a["value_sum"] or 0.0,  # a proportion's conversions: values 1 (or 0) summed
            value_sum=a["value_sum"] or 0.0,
            value_squares=a["value_squares"] if a["value_squares"] is not None else 0.0,
        )
        for a in arms
    )
    return AbObservation(stable=stable, candidate=candidate)


def _arm(selector: str, metric: str, window: str) -> ArmQueries:
    feedback = f'{n.LABEL_OUTCOME}="{_escape(metric)}"'

    def count(name: str, extra: str) -> str:
        return f"sum(increase({name}{_with(selector, extra)}[{window}]))"

    return ArmQueries(
        requests=count(n.REQUESTS_TOTAL, f'{n.LABEL_CODE}="200"'),
        events=count(n.FEEDBACK_TOTAL, feedback),
        value_sum=count(n.FEEDBACK_VALUE_SUM, feedback),
        value_squares=count(n.FEEDBACK_VALUE_SQUARES, feedback),
    )


def _p99(selector: str, window: str) -> str:
    buckets = f"{n.REQUEST_DURATION_SECONDS}_bucket{selector}"
    return f"histogram_quantile(0.99, sum by (le) (increase({buckets}[{window}])))"


def _timed_out(spec: ModelDeploymentSpec, test: AbTestStatus, now: datetime) -> bool:
    assert spec.strategy.ab_test is not None
    return now >= test.started_at + parse_duration(spec.strategy.ab_test.max_duration)


def _window(started: datetime, now: datetime) -> str:
    return f"{max(int((now - started).total_seconds()), 1)}s"


def _selector(namespace: str, model: str, version: str | None, track: str) -> str:
    labels = [("namespace", namespace), (n.LABEL_MODEL, model)]
    if version is not None:
        labels.append((n.LABEL_VERSION, version))
    labels.append((n.LABEL_TRACK, track))
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _with(selector: str, extra: str) -> str:
    return selector if not extra else f"{selector[:-1]},{extra}}}"


def _escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _finite(value: Number) -> Number:
    return value if value is not None and math.isfinite(value) else None
