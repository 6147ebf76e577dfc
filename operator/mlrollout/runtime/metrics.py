"""Prometheus metrics of one model server. Names come from metric_names (the operator's contract).

With several worker processes, prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set
by the launcher before any worker imports prometheus_client) makes /metrics show totals across them.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp

from mlrollout.runtime import metric_names as n

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
VALUE_BUCKETS = (
    -100.0,
    -10.0,
    -1.0,
    -0.5,
    0.0,
    0.1,
    0.25,
    0.5,
    0.75,
    0.9,
    1.0,
    2.0,
    5.0,
    10.0,
    100.0,
    1000.0,
)
B = list(n.BASE_LABELS)


def _strip_total(name: str) -> str:
    # prometheus_client appends _total to counters itself.
    return name[: -len("_total")] if name.endswith("_total") else name


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self, model: str, version: str, track: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model, self.version = model, version
        self.requests = Counter(
            _strip_total(n.REQUESTS_TOTAL), "Requests by HTTP status code", [*B, n.LABEL_CODE], registry=r
        )
        self.duration = Histogram(
            n.REQUEST_DURATION_SECONDS,
            "Request latency in the server",
            B,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            n.BATCH_SIZE, "Rows per model call (micro-batches)", B, buckets=BATCH_BUCKETS, registry=r
        )
        self.predictions = Counter(
            _strip_total(n.PREDICTIONS_TOTAL), "Predicted classes", [*B, n.LABEL_CLASS], registry=r
        )
        self.prediction_value = Histogram(
            n.PREDICTION_VALUE, "Predicted values (regression)", B, buckets=VALUE_BUCKETS, registry=r
        )
        self.shadow_requests = Counter(
            _strip_total(n.SHADOW_REQUESTS_TOTAL),
            "Mirrored requests by result",
            [*B, n.LABEL_RESULT],
            registry=r,
        )
        self.shadow_errors = Counter(
            _strip_total(n.SHADOW_ERRORS_TOTAL),
            "Mirrored requests that failed, by reason (mirroring.ERROR_REASONS)",
            [*B, n.LABEL_REASON],
            registry=r,
        )
        self.shadow_agreement = Counter(
            _strip_total(n.SHADOW_AGREEMENT_TOTAL), "Rows where shadow and primary agree", B, registry=r
        )
        self.shadow_compared = Counter(
            _strip_total(n.SHADOW_COMPARED_TOTAL), "Rows compared between shadow and primary", B, registry=r
        )
        self.shadow_duration = Histogram(
            n.SHADOW_DURATION_SECONDS, "Latency of mirrored requests", B, buckets=LATENCY_BUCKETS, registry=r
        )
        self.feedback = Counter(
            _strip_total(n.FEEDBACK_TOTAL),
            "Feedback events (labels, outcomes)",
            [*B, n.LABEL_OUTCOME],
            registry=r,
        )
        self.feedback_value = Counter(
            _strip_total(n.FEEDBACK_VALUE_SUM),
            "Sum of numeric feedback values",
            [*B, n.LABEL_OUTCOME],
            registry=r,
        )
        self.feedback_squares = Counter(
            _strip_total(n.FEEDBACK_VALUE_SQUARES),
            "Sum of squared numeric feedback values",
            [*B, n.LABEL_OUTCOME],
            registry=r,
        )
        self.mirror_fraction = Gauge(
            n.MIRROR_FRACTION,
            "Share of requests mirrored to the shadow (live config as applied)",
            B,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.log_dropped = Counter(
            _strip_total(n.INFERENCE_LOG_DROPPED_TOTAL),
            "Inference log rows dropped because the buffer was full",
            B,
            registry=r,
        )
        self.load_seconds = Gauge(
            n.MODEL_LOAD_SECONDS,
            "Seconds it took to load the model",
            B,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            n.MODEL_READY,
            "1 when the model is loaded and serving",
            B,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.info = Gauge(
            n.MODEL_INFO, "Model served by this pod", [*B, "flavor"], registry=r, multiprocess_mode="livemax"
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self.set_track(track)

    def set_track(self, track: str) -> None:
        """Re-bind label children (cheap per-request increments) when the live config moves the track."""
        self.track = track
        self.labels = (self.model, self.version, track)
        self._children.clear()
        self.d_duration = self.duration.labels(*self.labels)
        self.d_batch = self.batch_size.labels(*self.labels)
        self.d_value = self.prediction_value.labels(*self.labels)
        # Answered requests from 0: increase() over an A/B test's window counts a new pod's first ones.
        self._children[("req", "200")] = self.requests.labels(*self.labels, "200")

    def feedback_event(self, version: str, track: str, outcome: str, value: float | None) -> None:
        """One feedback event, under the variant that served the request (not this pod's, maybe)."""
        labels = (self.model, version, track, outcome)
        self.feedback.labels(*labels).inc()
        if value is not None:
            self.feedback_value.labels(*labels).inc(value)
            self.feedback_squares.labels(*labels).inc(value * value)

    def start_feedback(self, outcomes: list[str]) -> None:
        """This pod's series at 0 from the start: increase() then counts the first events too."""
        for outcome in outcomes:
            for counter in (self.feedback, self.feedback_value, self.feedback_squares):
                counter.labels(*self.labels, outcome)

    def request(self, code: int, seconds: float) -> None:
        key = ("req", str(code))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*self.labels, str(code))
        child.inc()
        self.d_duration.observe(seconds)

    def predicted(self, values: list[Any], classification: bool) -> None:
        if classification:
            counts: dict[str, int] = {}
            for v in values:
                k = str(v)
                counts[k] = counts.get(k, 0) + 1
            for k, c in counts.items():
                key = ("cls", k)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self.predictions.labels(*self.labels, k)
                child.inc(c)
            return
        for v in values:
            if isinstance(v, int | float):
                self.d_value.observe(float(v))

    def exposition(self) -> bytes:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
