"""What the reconciler reads for the A/B and shadow strategies (new optional fields of Observed).

All counts are since the experiment started (status.rollout.abTest.startedAt or
status.rollout.shadow.startedAt): the adapter queries `increase(...[<now - start>])`, so counters of
pods that restarted, and traffic from before the test, do not count. Prometheus' increase() may give
fractions: counts are floats.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmCounts:
    """One variant (track) of an A/B test, from the runtime's metrics.

    requests: answered requests of the track (mlrollout_requests_total{track, code="200"});
    outcomes: feedback events of the metric (mlrollout_feedback_total{track, outcome=<metric name>});
    value_sum: their summed values (mlrollout_feedback_value_sum_total{track, outcome});
    value_squares: their summed squared values (a mean metric's variance); None while the runtime does
    not export it.
    """

    requests: float
    outcomes: float = 0.0
    value_sum: float = 0.0
    value_squares: float | None = None


@dataclass(frozen=True)
class AbObservation:
    stable: ArmCounts
    candidate: ArmCounts


@dataclass(frozen=True)
class ShadowObservation:
    """The shadow comparison, from the stable pods' mirroring metrics and both tracks' latency.

    mirror_percent: the share the stable pods' live config mirrors, as read back (None: not set);
    mirrored: requests mirrored and answered or failed (shadow_requests_total{result!="dropped"});
    errors: mirrored requests the candidate failed (non-200, timeout, bad body; result="error");
    compared / agreed: prediction rows compared and agreeing (shadow_compared_total, shadow_agreement_total);
    latencies: p99 seconds of each track's own request duration histogram over the window.
    """

    mirror_percent: int | None
    mirrored: float = 0.0
    errors: float = 0.0
    compared: float = 0.0
    agreed: float = 0.0
    stable_latency_seconds: float | None = None
    candidate_latency_seconds: float | None = None
