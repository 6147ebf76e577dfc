"""The shadow strategy, pure: the candidate gets a mirrored share of live traffic, callers only ever get
stable's answer, and after the window its predictions, latency and errors are judged.

Sub-steps: START (the shadow track is up and the stable pods' live config mirrors the configured
share, as read back), WINDOW (compare for `duration`; then promote, continue into `continueWith`'s
canary, or reject). Fewer mirrored requests than `minRequests` is inconclusive: the rollout pauses
(mirroring goes on) and judges again; it never passes for lack of traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlrollout.api.base import parse_duration
from mlrollout.api.experiment_status import ShadowStatus
from mlrollout.api.names import TRACK_SHADOW
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.api.strategy import Shadow
from mlrollout.rollout.actions import ApplyServing, DeleteServing, DeleteTrackService
from mlrollout.rollout.canary import POLL_WHILE_MOVING
from mlrollout.rollout.experiment_observed import ShadowObservation
from mlrollout.rollout.experiment_step import ConfigureMirror, ExperimentAction, StepResult
from mlrollout.rollout.observed import Observed

START, WINDOW = 0, 1
POLL_IN_WINDOW = 30.0

Verdict = Literal["pass", "fail", "inconclusive"]


def agree(stable: object, candidate: object, relative_tolerance: float) -> bool:
    """Classification labels (strings, integers, booleans) agree when equal; regression outputs (floats)
    when within the relative tolerance of stable's value (an absolute 1e-9 near zero)."""
    if isinstance(stable, float) and isinstance(candidate, int | float) and not isinstance(candidate, bool):
        return math.isclose(stable, float(candidate), rel_tol=relative_tolerance, abs_tol=1e-9)
    if isinstance(candidate, float) and isinstance(stable, int) and not isinstance(stable, bool):
        return math.isclose(float(stable), candidate, rel_tol=relative_tolerance, abs_tol=1e-9)
    return type(stable) is type(candidate) and stable == candidate


def agreement(
    stable: Sequence[object], candidate: Sequence[object], relative_tolerance: float
) -> tuple[int, int]:
    """(rows compared, rows agreeing) of one mirrored request; rows beyond the shorter answer disagree."""
    agreed = sum(agree(s, c, relative_tolerance) for s, c in zip(stable, candidate, strict=False))
    return max(len(stable), len(candidate)), agreed


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    status: ShadowStatus  # the numbers (verdict left as it was: the step sets it)
    problems: tuple[str, ...]  # why it failed, or why it is inconclusive


def judge(shadow: Shadow, observed: ShadowObservation | None, base: ShadowStatus) -> Judgement:
    if observed is None:
        return Judgement("inconclusive", base, ("no shadow metrics (mirroring not read back)",))
    agreement_rate = observed.agreed / observed.compared if observed.compared > 0 else None
    error_rate = observed.errors / observed.mirrored if observed.mirrored > 0 else None
    stable_p99, cand_p99 = observed.stable_latency_seconds, observed.candidate_latency_seconds
    ratio = cand_p99 / stable_p99 if cand_p99 is not None and stable_p99 else None
    numbers = base.model_copy(
        update={
            "mirrored": observed.mirrored,
            "errors": observed.errors,
            "compared": observed.compared,
            "agreement": None if agreement_rate is None else min(max(agreement_rate, 0.0), 1.0),
            "error_rate": None if error_rate is None else min(max(error_rate, 0.0), 1.0),
            "stable_latency_seconds": stable_p99,
            "candidate_latency_seconds": cand_p99,
            "latency_ratio": ratio,
        }
    )
    if observed.mirrored < shadow.min_requests or error_rate is None:
        why = f"{observed.mirrored:.0f} of minRequests {shadow.min_requests} mirrored requests"
        return Judgement("inconclusive", numbers, (why,))
    failures: list[str] = []
    if error_rate > shadow.max_error_rate:
        failures.append(f"error rate {error_rate:.2%} > maxErrorRate {shadow.max_error_rate:.2%}")
    if agreement_rate is None:
        if failures:
            return Judgement("fail", numbers, tuple(failures))
        return Judgement("inconclusive", numbers, ("no predictions compared",))
    disagreement = 1.0 - agreement_rate
    if shadow.max_disagreement is not None and disagreement > shadow.max_disagreement:
        failures.append(f"disagreement {disagreement:.2%} > maxDisagreement {shadow.max_disagreement:.2%}")
    if shadow.max_latency_ratio is not None:
        if ratio is None:
            if not failures:
                return Judgement("inconclusive", numbers, ("no latency of one of the tracks",))
        elif ratio > shadow.max_latency_ratio:
            failures.append(
                f"p99 latency {ratio:.2f}x stable's > maxLatencyRatio {shadow.max_latency_ratio:g}"
            )
    if failures:
        return Judgement("fail", numbers, tuple(failures))
    return Judgement("pass", numbers, ())


def summary(status: ShadowStatus) -> str:
    parts = [f"{status.mirrored:.0f} mirrored", f"{status.compared:.0f} compared"]
    if status.agreement is not None:
        parts.append(f"agreement {status.agreement:.2%}")
    if status.error_rate is not None:
        parts.append(f"error rate {status.error_rate:.2%}")
    if status.latency_ratio is not None:
        parts.append(f"p99 latency {status.latency_ratio:.2f}x stable")
    return ", ".join(parts)


def shadow_replicas(spec: ModelDeploymentSpec, shadow: Shadow) -> int:
    """Enough candidate pods for the mirrored share (at least one)."""
    return max(1, math.ceil(spec.serving.replicas * shadow.mirror_percent / 100))


def step(
    spec: ModelDeploymentSpec,
    shadow: Shadow,
    rollout: RolloutStatus,
    observed: Observed,
    stable: str,
    now: datetime,
) -> StepResult:
    candidate = rollout.candidate
    assert candidate is not None
    rollout = rollout.model_copy(update={"strategy": "shadow", "desired_weight": 0})
    serve = ApplyServing(TRACK_SHADOW, candidate.model_name, candidate.version, shadow_replicas(spec, shadow))
    mirror = ConfigureMirror(shadow.mirror_percent, TRACK_SHADOW, shadow.relative_tolerance)
    mirror_on: tuple[ExperimentAction, ...] = (serve, mirror)
    mirror_off: tuple[ExperimentAction, ...] = (ConfigureMirror(0, TRACK_SHADOW),)
    if (rollout.step_index or 0) == START or rollout.shadow is None or rollout.shadow.started_at is None:
        track = observed.tracks.get(TRACK_SHADOW)
        ready = (
            track is not None and track.version == candidate.version and track.rolled_out and track.available
        )
        mirrored = observed.shadow is not None and observed.shadow.mirror_percent == shadow.mirror_percent
        if not ready:
            # mirroring stays off until the shadow serves: calls to a track not up yet would only fail
            message = "shadow: waiting for the shadow track"
            return StepResult(rollout, (serve,), "moving", "ShadowStarting", message, POLL_WHILE_MOVING)
        if not mirrored:
            message = f"shadow: waiting for mirroring of {shadow.mirror_percent}% to be read back"
            return StepResult(rollout, mirror_on, "moving", "ShadowStarting", message, POLL_WHILE_MOVING)
        started = ShadowStatus(started_at=now)
        rollout = rollout.model_copy(update={"step_index": WINDOW, "step_started_at": now, "shadow": started})
        message = f"shadow: mirroring {shadow.mirror_percent}% of live traffic to version {candidate.version}"
        return StepResult(rollout, mirror_on, "waiting", "ShadowStarted", message, POLL_IN_WINDOW)
    current = rollout.shadow
    assert current.started_at is not None
    end = current.started_at + parse_duration(shadow.duration)
    judgement = judge(shadow, observed.shadow, current)
    numbers = summary(judgement.status)
    if now < end:
        status = judgement.status.model_copy(update={"verdict": "Running", "message": numbers})
        message = f"shadow: comparing until {end.isoformat()}: {numbers}"
        remaining = (end - now).total_seconds()
        rollout = rollout.model_copy(update={"shadow": status})
        return StepResult(
            rollout, mirror_on, "waiting", "ShadowComparing", message, min(remaining, POLL_IN_WINDOW)
        )
    if judgement.verdict == "inconclusive":
        why = "; ".join(judgement.problems)
        status = judgement.status.model_copy(
            update={"verdict": "Inconclusive", "message": f"{why} ({numbers})"}
        )
        message = f"shadow: inconclusive, neither promoting nor rejecting: {why}"
        rollout = rollout.model_copy(update={"shadow": status})
        reason = "MetricsUnavailable" if observed.shadow is None else "NotEnoughTraffic"
        return StepResult(rollout, mirror_on, "analysis-paused", reason, message, POLL_IN_WINDOW)
    if judgement.verdict == "fail":
        why = "; ".join(judgement.problems)
        status = judgement.status.model_copy(update={"verdict": "Failed", "message": f"{why} ({numbers})"})
        rollout = rollout.model_copy(update={"shadow": status})
        return StepResult(
            rollout, mirror_off, "reject", "ShadowRejected", f"shadow rejected: {why} ({numbers})", None
        )
    status = judgement.status.model_copy(update={"verdict": "Passed", "message": numbers})
    rollout = rollout.model_copy(update={"shadow": status})
    if shadow.continue_with is not None:
        # the canary's Service selects every track: the shadow pods go before it serves anyone
        message = f"shadow passed ({numbers}): continuing into the canary"
        leave = (*mirror_off, DeleteServing(TRACK_SHADOW), DeleteTrackService(TRACK_SHADOW))
        return StepResult(rollout, leave, "continue", "ShadowPassed", message, 0.1)
    return StepResult(rollout, mirror_off, "promote", "ShadowPassed", f"shadow passed: {numbers}", None)
