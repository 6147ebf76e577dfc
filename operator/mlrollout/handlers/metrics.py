"""The operator's own /metrics: rollout state per ModelDeployment, reconcile counts, durations and
errors, and the monitor's verdicts read from status.monitoring.

Per-object series come from a snapshot of the last status seen for each object (observe(), fed by
every watch event), rendered by a collector at scrape time: forget() drops an object and every one of
its series goes with it, so label cardinality stays bounded by the objects that exist (phases,
conditions and columns are bounded lists). Names: mlrollout.handlers.metric_names.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from mlrollout.api.status import Phase
from mlrollout.handlers import metric_names as n

OUTCOMES = ("passed", "failed", "inconclusive", "errors")
MAX_ITEMS = 32  # the status lists' max_length (columns, tallies); also caps performance keys

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter(n.RECONCILES, "Reconcile ticks by result (ok | error)", ["result"], registry=REGISTRY)
RECONCILE_ERRORS = Counter(
    n.RECONCILE_ERRORS,
    "Failed reconcile ticks by kind (action_failed | conflict | api_error | unexpected)",
    ["kind"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    n.RECONCILE_SECONDS,
    "Duration of one reconcile tick",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
WAKEUPS = Counter(n.WAKEUPS, "Reconciles woken by an event, by cause", ["cause"], registry=REGISTRY)
WEBHOOKS = Counter(n.WEBHOOKS, "MLflow webhook deliveries by result", ["result"], registry=REGISTRY)
API_BACKOFFS = Counter(
    n.API_BACKOFFS, "Reconciles put off after an API error, by HTTP status", ["status"], registry=REGISTRY
)
REGISTRY_LOOKUPS = Gauge(
    n.REGISTRY_LOOKUPS, "Alias and version resolutions asked of registries since start", registry=REGISTRY
)
CACHED_CHILDREN = Gauge(
    n.CACHED_CHILDREN,
    "Children held in the operator's watch copy (reads served without the API server)",
    registry=REGISTRY,
)
for _cause in n.WAKE_CAUSES:
    WAKEUPS.labels(_cause)
for _result in n.WEBHOOK_RESULTS:
    WEBHOOKS.labels(_result)
for _kind in n.ERROR_KINDS:  # every kind shows from the start, so rate() sees the first error
    RECONCILE_ERRORS.labels(_kind)
for _result in ("ok", "error"):
    RECONCILES.labels(_result)


@dataclass(frozen=True)
class Seen:
    """What the metrics need of one object: its status, and the performance bounds of its spec."""

    status: Mapping[str, Any]
    performance_check: Mapping[str, Any]


def families(objects: Iterable[tuple[tuple[str, str], Seen]]) -> list[Metric]:
    """The per-object metric families for (namespace, name) -> Seen; pure, tolerant of odd shapes."""
    g = _Families()
    for (ns, name), seen in objects:
        obj, status, check = [ns, name], seen.status, seen.performance_check
        metric = check.get("metric")
        if isinstance(metric, str) and metric:
            for family, key in ((g.performance_min, "min"), (g.performance_max, "max")):
                if _is_number(check.get(key)):
                    family.add_metric([*obj, metric], float(check[key]))
        current = status.get("phase")
        for p in Phase:
            g.phase.add_metric([*obj, p.value], 1.0 if p.value == current else 0.0)
        model = _text(status.get("modelName"))
        g.info.add_metric(
            [*obj, model, _text(status.get("stableVersion")), _text(status.get("canaryVersion"))], 1.0
        )
        for cond in _list(status.get("conditions")):
            if "type" in cond:
                true = 1.0 if cond.get("status") == "True" else 0.0
                g.condition.add_metric([*obj, _text(cond["type"]), _text(cond.get("reason"))], true)
        rollout = _mapping(status.get("rollout"))
        weights: tuple[tuple[str, Any], ...] = (
            ("desired", rollout.get("desiredWeight")),
            ("actual", _mapping(status.get("weights")).get("canary")),
        )
        for kind, weight in weights:
            if _is_number(weight):
                g.weight.add_metric([*obj, kind], float(weight))
        run = _mapping(rollout.get("analysis"))
        stage = _text(run.get("stage"))
        if run:
            g.verdict.add_metric([*obj, stage, _text(run.get("verdict")) or "Running"], 1.0)
        for tally in _list(run.get("tallies")):
            for outcome in OUTCOMES:
                count = tally.get(outcome, 0)
                if _is_number(count):
                    g.outcomes.add_metric([*obj, stage, _text(tally.get("metric")), outcome], float(count))
        _monitoring(g, obj, model, status)
    return g.all()


def _monitoring(g: _Families, obj: list[str], model: str, status: Mapping[str, Any]) -> None:
    monitoring = _mapping(status.get("monitoring"))
    if not monitoring:
        return
    version = _text(monitoring.get("version") or status.get("stableVersion"))
    who = [*obj, model, version]
    verdict = monitoring.get("verdict")
    if isinstance(verdict, str) and verdict:
        g.drift_verdict.add_metric([*who, verdict], 1.0)
        g.drift_detected.add_metric(who, 1.0 if verdict == "Drift" else 0.0)
    for family, key in (
        (g.drift_share, "driftShare"),
        (g.stability, "importanceStability"),
        (g.samples, "samples"),
        (g.labelled, "labelledSamples"),
    ):
        if _is_number(monitoring.get(key)):
            family.add_metric(who, float(monitoring[key]))
    last_run = _timestamp(monitoring.get("lastRun"))
    if last_run is not None:
        g.last_run.add_metric(who, last_run)
    for column in _list(monitoring.get("columns")):
        if "column" not in column:
            continue
        at = [*who, _text(column["column"])]
        g.column_drifted.add_metric(at, 1.0 if column.get("drifted") else 0.0)
        if _is_number(column.get("statistic")):
            g.column_statistic.add_metric([*at, _text(column.get("test"))], float(column["statistic"]))
        for family, key in ((g.column_p_value, "pValue"), (g.column_effect, "effectSize")):
            if _is_number(column.get(key)):
                family.add_metric(at, float(column[key]))
    prediction = _mapping(monitoring.get("predictionDrift"))
    if prediction:
        g.prediction_drifted.add_metric(who, 1.0 if prediction.get("drifted") else 0.0)
        if _is_number(prediction.get("statistic")):
            g.prediction_statistic.add_metric(
                [*who, _text(prediction.get("test"))], float(prediction["statistic"])
            )
    for metric, value in list(_mapping(monitoring.get("performance")).items())[:MAX_ITEMS]:
        if _is_number(value):
            g.performance.add_metric([*who, str(metric)], float(value))


class _Families:
    def __init__(self) -> None:
        obj, who = list(n.OBJECT_LABELS), list(n.MODEL_LABELS)
        self.phase = GaugeMetricFamily(
            n.PHASE, "1 for the current phase of each ModelDeployment", labels=[*obj, "phase"]
        )
        self.info = GaugeMetricFamily(
            n.INFO, "Model and versions served", labels=[*obj, "model", "stable_version", "canary_version"]
        )
        self.condition = GaugeMetricFamily(
            n.CONDITION, "Status conditions: 1 when True, with their reason", labels=[*obj, "type", "reason"]
        )
        self.weight = GaugeMetricFamily(
            n.CANARY_WEIGHT,
            "Traffic share of the candidate: desired (spec step) and actual (read back)",
            labels=[*obj, "kind"],
        )
        self.outcomes = GaugeMetricFamily(
            n.ANALYSIS_MEASUREMENTS,
            "Measurements of the current analysis run by metric and outcome",
            labels=[*obj, "stage", "metric", "outcome"],
        )
        self.verdict = GaugeMetricFamily(
            n.ANALYSIS_VERDICT,
            "1 for the verdict of the current analysis run",
            labels=[*obj, "stage", "verdict"],
        )
        self.drift_share = GaugeMetricFamily(
            n.DRIFT_SHARE, "Share of drifted columns in the last monitor run", labels=who
        )
        self.drift_detected = GaugeMetricFamily(
            n.DRIFT_DETECTED, "1 when the last monitor verdict is Drift", labels=who
        )
        self.drift_verdict = GaugeMetricFamily(
            n.DRIFT_VERDICT, "1 for the last monitor verdict", labels=[*who, "verdict"]
        )
        self.column_drifted = GaugeMetricFamily(
            n.COLUMN_DRIFTED, "1 when the column drifted in the last monitor run", labels=[*who, "column"]
        )
        self.column_statistic = GaugeMetricFamily(
            n.COLUMN_STATISTIC, "Drift test statistic per column", labels=[*who, "column", "test"]
        )
        self.column_p_value = GaugeMetricFamily(
            n.COLUMN_P_VALUE, "Drift test p-value per column", labels=[*who, "column"]
        )
        self.column_effect = GaugeMetricFamily(
            n.COLUMN_EFFECT_SIZE,
            "Drift effect size per column (PSI or normalized Wasserstein)",
            labels=[*who, "column"],
        )
        self.prediction_drifted = GaugeMetricFamily(
            n.PREDICTION_DRIFTED, "1 when the model's outputs drifted in the last monitor run", labels=who
        )
        self.prediction_statistic = GaugeMetricFamily(
            n.PREDICTION_STATISTIC, "Drift test statistic of the model's outputs", labels=[*who, "test"]
        )
        self.performance = GaugeMetricFamily(
            n.PERFORMANCE,
            "Model quality on labelled live data (accuracy, f1, roc_auc, ...)",
            labels=[*who, "metric"],
        )
        self.performance_min = GaugeMetricFamily(
            n.PERFORMANCE_MIN,
            "Floor of the monitored metric (spec.monitoring.performance.min)",
            labels=[*obj, "metric"],
        )
        self.performance_max = GaugeMetricFamily(
            n.PERFORMANCE_MAX,
            "Ceiling of the monitored metric (spec.monitoring.performance.max)",
            labels=[*obj, "metric"],
        )
        self.stability = GaugeMetricFamily(
            n.IMPORTANCE_STABILITY, "Rank correlation of feature importances, training vs live", labels=who
        )
        self.samples = GaugeMetricFamily(n.SAMPLES, "Rows in the last monitored window", labels=who)
        self.labelled = GaugeMetricFamily(
            n.LABELLED_SAMPLES, "Labelled rows in the last monitored window", labels=who
        )
        self.last_run = GaugeMetricFamily(n.LAST_RUN, "Unix time of the last monitor run", labels=who)

    def all(self) -> list[Metric]:
        return [m for m in vars(self).values() if isinstance(m, Metric)]


class _Snapshots(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[tuple[str, str], Seen] = {}

    def put(self, key: tuple[str, str], seen: Seen) -> None:
        with self._lock:
            self._statuses[key] = seen

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._statuses.pop(key, None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._statuses)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            items = sorted(self._statuses.items())
        yield from families(items)


_SNAPSHOTS = _Snapshots()
REGISTRY.register(_SNAPSHOTS)


def observe(body: Mapping[str, Any]) -> None:
    """Record the object's status as last seen; an object being deleted leaves the metrics at once."""
    meta = _mapping(body.get("metadata"))
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    if meta.get("deletionTimestamp"):
        _SNAPSHOTS.drop(key)
    else:
        check = _mapping(_mapping(_mapping(body.get("spec")).get("monitoring")).get("performance"))
        status = copy.deepcopy(dict(_mapping(body.get("status"))))
        _SNAPSHOTS.put(key, Seen(status, copy.deepcopy(dict(check))))


def forget(namespace: str, name: str) -> None:
    """The object is gone: every series of it disappears."""
    _SNAPSHOTS.drop((namespace, name))


def observed() -> list[tuple[str, str]]:
    """The (namespace, name) of every object with series."""
    return _SNAPSHOTS.keys()


def reconciled(seconds: float, error_kind: str | None = None) -> None:
    """Count one tick; error_kind is one of metric_names.ERROR_KINDS when it failed."""
    RECONCILES.labels("error" if error_kind else "ok").inc()
    if error_kind:
        RECONCILE_ERRORS.labels(error_kind).inc()
    RECONCILE_SECONDS.observe(seconds)


@contextlib.contextmanager
def timed_tick(kind_of: Callable[[Exception], str]) -> Iterator[None]:
    """Time and count the tick inside; a failure is counted under kind_of(error) and re-raised. A
    cancelled tick (the daemon stopping) is not counted: it did not run to an end."""
    started = time.monotonic()
    try:
        yield
    except Exception as e:
        reconciled(time.monotonic() - started, kind_of(e))
        raise
    reconciled(time.monotonic() - started)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the scraper asked for (OpenMetrics or text): body, content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else []
    return [i for i in items[:MAX_ITEMS] if isinstance(i, Mapping)]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
