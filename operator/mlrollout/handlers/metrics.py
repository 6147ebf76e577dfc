"""The operator's own /metrics: rollout state per ModelDeployment, reconcile counts and durations,
and the monitor's verdicts read from status.monitoring.

Per-object series come from a snapshot of the last status seen for each object (observe()), rendered
by a collector at scrape time: forget() drops an object and every one of its series goes with it, so
label cardinality stays bounded by the objects that exist (phases and columns are bounded lists).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlrollout.api.status import Phase

PREFIX = "mlrollout_operator"
OBJECT_LABELS = ("namespace", "name")
OUTCOMES = ("passed", "failed", "inconclusive", "errors")
MAX_COLUMNS = 32  # MonitoringStatus.columns' max_length

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter(
    f"{PREFIX}_reconciles", "Reconcile ticks by result (ok | error)", ["result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Duration of one reconcile tick",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)


class _Snapshots(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, str], Mapping[str, Any]] = {}

    def put(self, key: tuple[str, str], status: Mapping[str, Any]) -> None:
        with self._lock:
            self._bodies[key] = status

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._bodies.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            items = sorted(self._bodies.items())
        phase = GaugeMetricFamily(
            f"{PREFIX}_phase",
            "1 for the current phase of each ModelDeployment",
            labels=[*OBJECT_LABELS, "phase"],
        )
        weight = GaugeMetricFamily(
            f"{PREFIX}_canary_weight_percent",
            "Traffic share of the candidate: desired (spec step) and actual (read back)",
            labels=[*OBJECT_LABELS, "kind"],
        )
        outcomes = GaugeMetricFamily(
            f"{PREFIX}_analysis_measurements",
            "Measurements of the current analysis run by metric and outcome",
            labels=[*OBJECT_LABELS, "stage", "metric", "outcome"],
        )
        running = GaugeMetricFamily(
            f"{PREFIX}_analysis_verdict",
            "1 for the verdict of the current analysis run",
            labels=[*OBJECT_LABELS, "stage", "verdict"],
        )
        drift_share = GaugeMetricFamily(
            f"{PREFIX}_monitoring_drift_share",
            "Share of drifted columns in the last monitor run",
            labels=[*OBJECT_LABELS, "model", "version"],
        )
        drifted = GaugeMetricFamily(
            f"{PREFIX}_monitoring_column_drifted",
            "1 when the column drifted in the last monitor run",
            labels=[*OBJECT_LABELS, "model", "version", "column"],
        )
        performance = GaugeMetricFamily(
            f"{PREFIX}_monitoring_performance",
            "Model quality on labelled live data (accuracy, f1, roc_auc, ...)",
            labels=[*OBJECT_LABELS, "model", "version", "metric"],
        )
        stability = GaugeMetricFamily(
            f"{PREFIX}_monitoring_importance_stability",
            "Stability of feature importances between reference and live data",
            labels=[*OBJECT_LABELS, "model", "version"],
        )
        for (ns, name), status in items:
            obj = [ns, name]
            current = status.get("phase")
            for p in Phase:
                phase.add_metric([*obj, p.value], 1.0 if p.value == current else 0.0)
            rollout = _mapping(status.get("rollout"))
            for kind, value in (
                ("desired", rollout.get("desiredWeight")),
                ("actual", _mapping(status.get("weights")).get("canary")),
            ):
                if _is_number(value):
                    weight.add_metric([*obj, kind], float(value))  # type: ignore[arg-type]
            run = _mapping(rollout.get("analysis"))
            stage = str(run.get("stage", ""))
            if run:
                running.add_metric([*obj, stage, str(run.get("verdict", "Running"))], 1.0)
            for tally in run.get("tallies") or []:
                tally = _mapping(tally)
                for outcome in OUTCOMES:
                    count = tally.get(outcome, 0)
                    if _is_number(count):
                        outcomes.add_metric(
                            [*obj, stage, str(tally.get("metric", "")), outcome], float(count)
                        )
            monitoring = _mapping(status.get("monitoring"))
            model = str(status.get("modelName") or "")
            version = str(monitoring.get("version") or status.get("stableVersion") or "")
            who = [*obj, model, version]
            if _is_number(monitoring.get("driftShare")):
                drift_share.add_metric(who, float(monitoring["driftShare"]))
            for column in (monitoring.get("columns") or [])[:MAX_COLUMNS]:
                column = _mapping(column)
                if "column" in column:
                    drifted.add_metric([*who, str(column["column"])], 1.0 if column.get("drifted") else 0.0)
            for metric, value in list(_mapping(monitoring.get("performance")).items())[:MAX_COLUMNS]:
                if _is_number(value):
                    performance.add_metric([*who, str(metric)], float(value))
            if _is_number(monitoring.get("importanceStability")):
                stability.add_metric(who, float(monitoring["importanceStability"]))
        yield from (phase, weight, outcomes, running, drift_share, drifted, performance, stability)


_SNAPSHOTS = _Snapshots()
REGISTRY.register(_SNAPSHOTS)


def observe(body: Mapping[str, Any]) -> None:
    """Record the object's status as last read (call after each tick, with the body written)."""
    meta = _mapping(body.get("metadata"))
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    if meta.get("deletionTimestamp"):
        _SNAPSHOTS.drop(key)
    else:
        _SNAPSHOTS.put(key, dict(_mapping(body.get("status"))))


def forget(namespace: str, name: str) -> None:
    """The object is gone: every series of it disappears."""
    _SNAPSHOTS.drop((namespace, name))


def reconciled(seconds: float, error: bool) -> None:
    RECONCILES.labels("error" if error else "ok").inc()
    RECONCILE_SECONDS.observe(seconds)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve /metrics on a daemon thread; returns the server (its .server_port, .shutdown())."""
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
