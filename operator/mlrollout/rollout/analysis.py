"""Analysis, pure: the PromQL of a metric, one measurement's outcome, and the verdict of a run.

Four outcomes, each with its own budget:
- pass / fail: the value against min / max. More than `failureLimit` failures of one metric in a run
  make the run Failed (the rollout rolls back).
- inconclusive: fewer requests in the window than `minRequests`, or no data; never a pass.
- error: the query failed or Prometheus was unreachable.
More than `inconclusiveLimit` (or `errorLimit`) of those in a row for one metric make the verdict
Inconclusive (or Error): the rollout pauses, neither promoting nor rolling back. Measuring goes on,
and the next conclusive measurement returns the run to Running: the rollout resumes by itself once
data is back. A run is Passed when every metric has `count` conclusive measurements within its
failure budget. Passed and Failed are final.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlrollout.api.base import parse_duration
from mlrollout.api.loop import Analysis, AnalysisMetric, MetricTemplate
from mlrollout.api.status import (
    AnalysisRun,
    AnalysisVerdict,
    Measurement,
    MeasurementOutcome,
    MetricTally,
)
from mlrollout.runtime import metric_names as n

HISTORY_LIMIT = 20  # AnalysisRun.history's max_length
MESSAGE_LIMIT = 512  # Measurement.message's max_length
RUN_MESSAGE_LIMIT = 1024  # AnalysisRun.message's max_length
TEMPLATE_VARIABLES = ("namespace", "name", "model", "version", "track", "stableVersion", "interval")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_QUANTILES: dict[MetricTemplate, float] = {"latencyP50": 0.5, "latencyP95": 0.95, "latencyP99": 0.99}


@dataclass(frozen=True)
class QueryContext:
    namespace: str
    name: str  # the ModelDeployment
    model: str  # the registered model: the runtime's `model` label
    version: str  # the candidate's version
    track: str  # the candidate's track (canary, preview, shadow)
    stable_version: str | None
    interval: str  # a PromQL range such as 1m (Analysis.interval)


@dataclass(frozen=True)
class MetricQueries:
    value: str
    requests: str  # the candidate track's requests in the window


@dataclass(frozen=True)
class Sample:
    metric: str
    value: float | None  # None: the query returned nothing
    requests: float | None
    error: str | None = None  # the query failed or Prometheus was unreachable


def queries(metric: AnalysisMetric, ctx: QueryContext) -> MetricQueries:
    candidate = _selector(ctx, ctx.version, ctx.track)
    requests = f"sum(increase({n.REQUESTS_TOTAL}{candidate}[{ctx.interval}]))"
    if metric.query is not None:
        return MetricQueries(render(metric.query, ctx), requests)
    assert metric.template is not None
    return MetricQueries(_template(metric.template, ctx), requests)


def render(query: str, ctx: QueryContext) -> str:
    """Fill {{namespace}} {{name}} {{model}} {{version}} {{track}} {{stableVersion}} {{interval}}.

    Values are escaped for use inside a double-quoted PromQL string; unknown names are left as they
    are (unknown_variables() reports them as bad input).
    """
    values = {
        "namespace": ctx.namespace,
        "name": ctx.name,
        "model": ctx.model,
        "version": ctx.version,
        "track": ctx.track,
        "stableVersion": ctx.stable_version or "",
        "interval": ctx.interval,
    }

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            return match.group(0)
        return values[key] if key == "interval" else _escape(values[key])

    return _VARIABLE.sub(fill, query)


def unknown_variables(query: str) -> list[str]:
    return sorted({m for m in _VARIABLE.findall(query) if m not in TEMPLATE_VARIABLES})


def judge(metric: AnalysisMetric, analysis: Analysis, sample: Sample, now: datetime) -> Measurement:
    """One measurement: error, then inconclusive (too few requests or no data), then pass or fail."""

    def measured(outcome: MeasurementOutcome, message: str) -> Measurement:
        return Measurement(
            metric=metric.name,
            outcome=outcome,
            value=_finite(sample.value),
            requests=_finite(sample.requests),
            at=now,
            message=_clip(f"{metric.name}: {message}", MESSAGE_LIMIT),
        )

    if sample.error is not None:
        return measured("error", sample.error)
    requests = sample.requests
    if requests is None or math.isnan(requests) or requests < analysis.min_requests:
        seen = "no requests" if requests is None or math.isnan(requests) else f"{requests:.0f} requests"
        return measured(
            "inconclusive", f"{seen} in {analysis.interval}, fewer than minRequests {analysis.min_requests}"
        )
    value = sample.value
    if value is None or math.isnan(value):
        return measured("inconclusive", f"no data in {analysis.interval}")
    if metric.max is not None and value > metric.max:
        return measured("fail", f"{_num(value)} > max {_num(metric.max)}")
    if metric.min is not None and value < metric.min:
        return measured("fail", f"{_num(value)} < min {_num(metric.min)}")
    return measured("pass", f"{_num(value)} within {_bounds(metric)}")


def start(stage: str, count: int, now: datetime, interval: timedelta | None = None) -> AnalysisRun:
    """A fresh run. Pass the analysis interval so the first window holds only the candidate's traffic."""
    return AnalysisRun(
        stage=stage, started_at=now, next_measurement_at=now + (interval or timedelta(0)), count=count
    )


def interval_of(analysis: Analysis) -> timedelta:
    return parse_duration(analysis.interval)


def is_due(run: AnalysisRun, now: datetime) -> bool:
    return run.verdict not in ("Passed", "Failed") and (
        run.next_measurement_at is None or now >= run.next_measurement_at
    )


def record(
    run: AnalysisRun, measurements: Sequence[Measurement], analysis: Analysis, now: datetime
) -> AnalysisRun:
    """Fold one round of measurements into the run; a Passed or Failed run is final and unchanged."""
    if run.verdict in ("Passed", "Failed"):
        return run
    tallies = {t.metric: t for t in run.tallies}
    for m in measurements:
        tallies[m.metric] = _tally(tallies.get(m.metric) or MetricTally(metric=m.metric), m.outcome)
    order = [metric.name for metric in analysis.metrics]
    ordered = [tallies[name] for name in order if name in tallies]
    ordered += [t for name, t in tallies.items() if name not in order]
    history = [*run.history, *measurements][-HISTORY_LIMIT:]
    verdict, message = _verdict(ordered, analysis, run.count, measurements)
    return run.model_copy(
        update={
            "taken": run.taken + 1,
            "next_measurement_at": now + interval_of(analysis),
            "tallies": ordered,
            "history": history,
            "verdict": verdict,
            "message": _clip(message, RUN_MESSAGE_LIMIT) if message else None,
        }
    )


def limits(metric: AnalysisMetric, analysis: Analysis) -> tuple[int, int, int]:
    """(failure, inconclusive, error) limits: the metric's own, else the analysis-wide ones."""
    return (
        analysis.failure_limit if metric.failure_limit is None else metric.failure_limit,
        analysis.inconclusive_limit if metric.inconclusive_limit is None else metric.inconclusive_limit,
        analysis.error_limit if metric.error_limit is None else metric.error_limit,
    )


def _verdict(
    tallies: Sequence[MetricTally], analysis: Analysis, count: int, latest: Sequence[Measurement]
) -> tuple[AnalysisVerdict, str | None]:
    metrics = {m.name: m for m in analysis.metrics}
    last = {m.metric: m for m in latest}
    failed: list[str] = []
    erroring: list[str] = []
    inconclusive: list[str] = []
    for t in tallies:
        metric = metrics.get(t.metric)
        if metric is None:
            continue
        failure_limit, inconclusive_limit, error_limit = limits(metric, analysis)
        why = last[t.metric].message if t.metric in last else t.metric
        if t.failed > failure_limit:
            failed.append(f"{why} ({t.failed} failures, limit {failure_limit})")
        if t.consecutive_errors > error_limit:
            erroring.append(f"{why} ({t.consecutive_errors} errors in a row, limit {error_limit})")
        if t.consecutive_inconclusive > inconclusive_limit:
            inconclusive.append(
                f"{why} ({t.consecutive_inconclusive} inconclusive in a row, limit {inconclusive_limit})"
            )
    if failed:
        return "Failed", "; ".join(failed)
    seen = {t.metric: t for t in tallies}
    if all(m in seen and seen[m].passed + seen[m].failed >= count for m in metrics):
        return "Passed", f"{count} conclusive measurement(s) of every metric within limits"
    if erroring:
        return "Error", "; ".join(erroring)
    if inconclusive:
        return "Inconclusive", "; ".join(inconclusive)
    troubled = [m.message for m in latest if m.outcome != "pass" and m.message]
    return "Running", "; ".join(troubled) or None


def _tally(t: MetricTally, outcome: MeasurementOutcome) -> MetricTally:
    if outcome == "error":
        return t.model_copy(update={"errors": t.errors + 1, "consecutive_errors": t.consecutive_errors + 1})
    if outcome == "inconclusive":
        return t.model_copy(
            update={
                "inconclusive": t.inconclusive + 1,
                "consecutive_inconclusive": t.consecutive_inconclusive + 1,
            }
        )
    counts = {"passed": t.passed + 1} if outcome == "pass" else {"failed": t.failed + 1}
    return t.model_copy(update={**counts, "consecutive_errors": 0, "consecutive_inconclusive": 0})


def _template(template: MetricTemplate, ctx: QueryContext) -> str:
    sel = _selector(ctx, ctx.version, ctx.track)
    i = ctx.interval
    if template == "errorRate":
        errors = f'{n.REQUESTS_TOTAL}{sel[:-1]},{n.LABEL_CODE}=~"5.."}}'
        # `or vector(0)`: no 5xx series at all means no errors, not no data.
        return f"(sum(rate({errors}[{i}])) or vector(0)) / sum(rate({n.REQUESTS_TOTAL}{sel}[{i}]))"
    if template == "requestRate":
        return f"sum(rate({n.REQUESTS_TOTAL}{sel}[{i}]))"
    if template in _QUANTILES:
        buckets = f"{n.REQUEST_DURATION_SECONDS}_bucket{sel}"
        return f"histogram_quantile({_QUANTILES[template]}, sum by (le) (rate({buckets}[{i}])))"
    assert template == "predictionShift"
    return _prediction_shift(ctx)


def _prediction_shift(ctx: QueryContext) -> str:
    """Classifiers: total variation distance of the predicted classes, candidate against stable.
    Regression: the largest gap between the two cumulative distributions of predicted values over the
    histogram's buckets (a binned Kolmogorov-Smirnov statistic). Both lie in [0, 1]; 0 is no shift.
    Whichever the model exports answers (a regressor has no class series, a classifier no values).
    """
    i = ctx.interval
    cand = _selector(ctx, ctx.version, ctx.track)
    stable = _selector(ctx, ctx.stable_version, "stable")

    def share(sel: str) -> str:
        counts = f"increase({n.PREDICTIONS_TOTAL}{sel}[{i}])"
        return f"(sum by ({n.LABEL_CLASS}) ({counts}) / scalar(sum({counts})))"

    def cdf(sel: str) -> str:
        buckets = f"sum by (le) (increase({n.PREDICTION_VALUE}_bucket{sel}[{i}]))"
        return f"({buckets} / scalar(sum(increase({n.PREDICTION_VALUE}_count{sel}[{i}]))))"

    c, s = share(cand), share(stable)
    classes = f"0.5 * sum(abs(({c} or {s} * 0) - ({s} or {c} * 0)))"
    values = f"max(abs({cdf(cand)} - {cdf(stable)}))"
    return f"({classes}) or ({values})"


def _selector(ctx: QueryContext, version: str | None, track: str) -> str:
    labels = [("namespace", ctx.namespace), (n.LABEL_MODEL, ctx.model)]
    if version is not None:
        labels.append((n.LABEL_VERSION, version))
    labels.append((n.LABEL_TRACK, track))
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _escape(value: str) -> str:
    """Safe inside a double-quoted PromQL string (Go escapes: JSON's are a subset)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _finite(value: float | None) -> float | None:
    """Status is JSON: an infinite or NaN value is kept in the message only."""
    return value if value is not None and math.isfinite(value) else None


def _num(value: float) -> str:
    return f"{value:.4g}"


def _bounds(metric: AnalysisMetric) -> str:
    parts = []
    if metric.min is not None:
        parts.append(f"min {_num(metric.min)}")
    if metric.max is not None:
        parts.append(f"max {_num(metric.max)}")
    return " and ".join(parts) or "no bounds"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
