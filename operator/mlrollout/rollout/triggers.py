"""When to retrain: spec.retraining's triggers against status.monitoring and what is running. Pure.

Retraining fixes a stale model; rollback fixes a bad release. So the triggers read only the
monitor's verdicts about the STABLE version and the schedule, never rollout outcomes; they act only
on a healthy, fully rolled-out model (phase Healthy, or RolledBack with stable serving again), and a
trigger that fires while a training or a rollout runs waits (it never starts a second one).

Evidence is used once: a training records the monitor run it acted on (`evidenceAt`), and drift and
performance triggers then wait for a newer run. A retrained candidate that fails its gate therefore
never loops; the next training needs new evidence (or the next scheduled slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from mlrollout.api.base import parse_duration
from mlrollout.api.loop import DriftTrigger, MetricBound, PerformanceTrigger, Retraining, ScheduleTrigger
from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.api.retraining_status import RetrainingStatus, TriggerKind
from mlrollout.api.status import ModelDeploymentStatus, Phase
from mlrollout.rollout import cron

# Phases in which stable serves alone and is healthy: the only ones a retraining may start from.
SETTLED_PHASES = frozenset({Phase.HEALTHY, Phase.ROLLED_BACK})
# A failed training is retried (same trigger) after a backoff, this many times in a row at most;
# after that it waits for new evidence or the next scheduled slot.
MAX_FAILURES = 3
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)

Value = float | str | None


@dataclass(frozen=True)
class Reason:
    """Why a trigger fired or did not: readable in status and Events (signal, value, threshold)."""

    trigger: TriggerKind | Literal["retry"]
    signal: str
    value: Value
    threshold: Value
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Retrain:
    """Start a training now."""

    trigger: TriggerKind
    reason: Reason
    evidence_at: datetime | None  # the monitor run acted on (recorded so it is used once)

    @property
    def message(self) -> str:
        return f"retraining ({self.trigger}): {self.reason.message}"


@dataclass(frozen=True)
class Wait:
    """A trigger fired but something runs (or a backoff holds): evaluated again later."""

    trigger: TriggerKind
    reason: Reason
    blocked_by: str
    retry_at: datetime | None = None

    @property
    def message(self) -> str:
        return f"retraining ({self.trigger}) waits: {self.blocked_by}; fired because {self.reason.message}"


@dataclass(frozen=True)
class Quiet:
    """No trigger fires; `reasons` says why for each, `next_check` when one might (schedule, cooldown)."""

    reasons: tuple[Reason, ...]
    next_check: datetime | None = None

    @property
    def message(self) -> str:
        return "; ".join(r.message for r in self.reasons) or "no trigger"


Verdict = Retrain | Wait | Quiet


# -- one trigger at a time ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    kind: TriggerKind
    fired: bool
    reason: Reason
    ready_at: datetime | None = None  # when a not-fired check could change by time alone


def _not(kind: TriggerKind, signal: str, value: Value, threshold: Value, message: str) -> _Check:
    return _Check(kind, False, Reason(kind, signal, value, threshold, message))


def _fresh_evidence(
    kind: TriggerKind, monitoring: MonitoringStatus | None, stable: str | None, state: RetrainingStatus
) -> _Check | None:
    """None if the monitor's last run is new, about the stable version; else why not."""
    if monitoring is None or monitoring.last_run is None:
        return _not(kind, "monitor", None, None, "no monitor run yet")
    if monitoring.version is not None and stable is not None and monitoring.version != stable:
        return _not(
            kind,
            "version",
            monitoring.version,
            stable,
            f"the last monitor run is about version {monitoring.version}, stable is {stable}",
        )
    if state.evidence_at is not None and monitoring.last_run <= state.evidence_at:
        return _not(
            kind,
            "evidence",
            monitoring.last_run.isoformat(),
            state.evidence_at.isoformat(),
            f"the monitor run of {monitoring.last_run.isoformat()} was already acted on; "
            "waiting for a newer run",
        )
    return None


def _cooldown(kind: TriggerKind, cooldown: str, state: RetrainingStatus, now: datetime) -> _Check | None:
    if state.started_at is None:
        return None
    ready = state.started_at + parse_duration(cooldown)
    if now >= ready:
        return None
    check = _not(
        kind,
        "cooldown",
        (now - state.started_at).total_seconds(),
        parse_duration(cooldown).total_seconds(),
        f"cooldown {cooldown} after the training of {state.started_at.isoformat()} runs until "
        f"{ready.isoformat()}",
    )
    return replace(check, ready_at=ready)


def _past_bound(bound: MetricBound, monitoring: MonitoringStatus) -> tuple[bool, str, float | None]:
    """(holds, description, value) for 'the monitored metric is past the bound with enough labels'."""
    value = (monitoring.performance or {}).get(bound.metric)
    labelled = monitoring.labelled_samples or 0
    if value is None:
        return False, f"{bound.metric} not measured yet", None
    if labelled < bound.min_samples:
        return (
            False,
            f"{bound.metric} rests on {labelled} labelled rows, fewer than {bound.min_samples}",
            value,
        )
    if bound.below is not None:
        holds = value < bound.below
        return holds, f"{bound.metric} {value:.4g} {'<' if holds else '>='} floor {bound.below:g}", value
    assert bound.above is not None
    holds = value > bound.above
    return holds, f"{bound.metric} {value:.4g} {'>' if holds else '<='} ceiling {bound.above:g}", value


def check_schedule(
    trigger: ScheduleTrigger, state: RetrainingStatus, created_at: datetime, now: datetime
) -> _Check:
    schedule = cron.parse(trigger.cron)
    anchor = max(created_at, state.started_at) if state.started_at else created_at
    slot = schedule.last_between(anchor, now)
    if slot is None:
        upcoming = schedule.next_after(now)
        check = _not(
            "schedule",
            "schedule",
            None,
            trigger.cron,
            f"schedule {trigger.cron!r}: next at {upcoming.isoformat() if upcoming else 'never'}",
        )
        return replace(check, ready_at=upcoming)
    return _Check(
        "schedule",
        True,
        Reason(
            "schedule",
            "schedule",
            slot.isoformat(),
            trigger.cron,
            f"schedule {trigger.cron!r} due at {slot.isoformat()}",
        ),
    )


def check_drift(
    trigger: DriftTrigger,
    monitoring: MonitoringStatus | None,
    stable: str | None,
    state: RetrainingStatus,
    now: datetime,
) -> _Check:
    stale = _fresh_evidence("drift", monitoring, stable, state)
    if stale is not None:
        return stale
    assert monitoring is not None
    if monitoring.verdict != "Drift":
        return _not("drift", "drift", monitoring.verdict, "Drift", f"monitor verdict {monitoring.verdict}")
    samples = monitoring.samples or 0
    if samples < trigger.min_samples:
        return _not(
            "drift",
            "samples",
            samples,
            trigger.min_samples,
            f"drift on {samples} rows, fewer than minSamples {trigger.min_samples}",
        )
    cooling = _cooldown("drift", trigger.cooldown, state, now)
    if cooling is not None:
        return cooling
    drifted = [c.column for c in monitoring.columns if c.drifted]
    share = monitoring.drift_share
    what = (
        f"input drift on {len(drifted)} column(s) ({', '.join(drifted[:5])})"
        + (f", share {share:.2f}" if share is not None else "")
        + f" over {samples} rows (minSamples {trigger.min_samples})"
    )
    confirm = trigger.confirm
    if confirm is None:
        return _Check("drift", True, Reason("drift", "drift", share, None, what))
    confirmations: list[str] = []
    held: list[str] = []
    pred = monitoring.prediction_drift
    if confirm.prediction_drift:
        if pred is not None and pred.drifted:
            p = f" (p={pred.p_value:.3g})" if pred.p_value is not None else ""
            held.append(f"predictions drifted too{p}")
        else:
            confirmations.append(
                "predictions did not drift" if pred is not None else "no prediction drift test"
            )
    if confirm.performance is not None:
        holds, text, _ = _past_bound(confirm.performance, monitoring)
        (held if holds else confirmations).append(text)
    if held:
        return _Check("drift", True, Reason("drift", "drift", share, None, f"{what}; {'; '.join(held)}"))
    return _not("drift", "benignDrift", share, None, f"{what} looks benign: {'; '.join(confirmations)}")


def check_performance(
    trigger: PerformanceTrigger,
    monitoring: MonitoringStatus | None,
    stable: str | None,
    state: RetrainingStatus,
    now: datetime,
) -> _Check:
    stale = _fresh_evidence("performance", monitoring, stable, state)
    if stale is not None:
        return stale
    assert monitoring is not None
    holds, text, value = _past_bound(trigger, monitoring)
    bound = trigger.below if trigger.below is not None else trigger.above
    signal = f"performance:{trigger.metric}"
    if not holds:
        return _not("performance", signal, value, bound, text)
    cooling = _cooldown("performance", trigger.cooldown, state, now)
    if cooling is not None:
        return cooling
    return _Check(
        "performance",
        True,
        Reason(
            "performance", signal, value, bound, f"{text} over {monitoring.labelled_samples} labelled rows"
        ),
    )


# -- what is running ---------------------------------------------------------------------------------


def busy_with(status: ModelDeploymentStatus, state: RetrainingStatus) -> str | None:
    """What keeps a retraining from starting now, or None."""
    if state.state == "Training":
        return f"training Job {state.job or '?'} is running"
    rollout = status.rollout
    if rollout is not None and rollout.candidate is not None:
        return f"the rollout of version {rollout.candidate.version} is in progress"
    if status.phase not in SETTLED_PHASES:
        return f"phase {status.phase.value}: retraining starts only from a healthy, fully rolled-out model"
    return None


def retry_delay(failures: int) -> timedelta:
    """1 min, 2 min, 4 min, ... capped at 1 h."""
    exponent = min(max(failures - 1, 0), 16)
    delay: timedelta = RETRY_BASE * 2**exponent
    return min(delay, RETRY_MAX)


# -- the verdict -------------------------------------------------------------------------------------


def evaluate(
    retraining: Retraining | None,
    status: ModelDeploymentStatus,
    state: RetrainingStatus | None,
    created_at: datetime,
    now: datetime,
) -> Verdict:
    """Retrain, wait, or stay quiet, with the reason (signal, value, threshold) in each case."""
    if retraining is None:
        return Quiet((Reason("manual", "spec", None, None, "spec.retraining is not set"),))
    state = state or RetrainingStatus()
    retry = _retry(state, status.monitoring, now)
    checks = _checks(retraining, status, state, created_at, now)
    fired = retry or next((c for c in checks if c.fired), None)
    if fired is None:
        ready = [c.ready_at for c in checks if c.ready_at is not None]
        return Quiet(tuple(c.reason for c in checks), min(ready) if ready else None)
    blocked = busy_with(status, state)
    if blocked is None and state.next_attempt_at is not None and now < state.next_attempt_at:
        blocked = f"backing off after a failed training until {state.next_attempt_at.isoformat()}"
        return Wait(fired.kind, fired.reason, blocked, state.next_attempt_at)
    if blocked is not None:
        return Wait(fired.kind, fired.reason, blocked)
    monitoring = status.monitoring
    evidence = monitoring.last_run if monitoring is not None else None
    return Retrain(fired.kind, fired.reason, evidence)


def _retry(state: RetrainingStatus, monitoring: MonitoringStatus | None, now: datetime) -> _Check | None:
    """A failed training is retried with its own trigger until MAX_FAILURES in a row."""
    if state.state != "Failed" or state.trigger is None or state.failures >= MAX_FAILURES:
        return None
    reason = Reason(
        "retry",
        "failures",
        state.failures,
        MAX_FAILURES,
        f"retry {state.failures + 1}/{MAX_FAILURES} of the {state.trigger} retraining "
        f"({state.message or 'the training Job failed'})",
    )
    return _Check(state.trigger, True, reason)


def _checks(
    retraining: Retraining,
    status: ModelDeploymentStatus,
    state: RetrainingStatus,
    created_at: datetime,
    now: datetime,
) -> Sequence[_Check]:
    out: list[_Check] = []
    for trigger in retraining.triggers:
        if trigger.schedule is not None:
            out.append(check_schedule(trigger.schedule, state, created_at, now))
        elif trigger.drift is not None:
            out.append(check_drift(trigger.drift, status.monitoring, status.stable_version, state, now))
        elif trigger.performance is not None:
            out.append(
                check_performance(trigger.performance, status.monitoring, status.stable_version, state, now)
            )
    return out


# -- recording what happened -------------------------------------------------------------------------


def started(state: RetrainingStatus | None, verdict: Retrain, job: str, now: datetime) -> RetrainingStatus:
    """The record once the training Job is applied (its name comes from `attempt`)."""
    state = state or RetrainingStatus()
    return state.model_copy(
        update={
            "state": "Training",
            "trigger": verdict.trigger,
            "reason": verdict.reason.message[:1024],
            "attempt": state.attempt + 1,
            "job": job,
            "started_at": now,
            "finished_at": None,
            "evidence_at": verdict.evidence_at or state.evidence_at,
            "version": None,
            "next_attempt_at": None,
            "message": None,
            "approved_by": None,
        }
    )


def succeeded(state: RetrainingStatus, version: str, now: datetime) -> RetrainingStatus:
    """The Job registered `version`: it becomes the candidate (gates, then the rollout)."""
    return state.model_copy(
        update={
            "state": "Trained",
            "version": version,
            "finished_at": now,
            "failures": 0,
            "next_attempt_at": None,
            "message": f"registered version {version}",
        }
    )


def failed(state: RetrainingStatus, message: str, now: datetime) -> RetrainingStatus:
    """The Job failed (no model, bad dataset, crash): stable untouched, the next attempt backed off."""
    failures = state.failures + 1
    return state.model_copy(
        update={
            "state": "Failed",
            "finished_at": now,
            "failures": failures,
            "next_attempt_at": now + retry_delay(failures),
            "message": message[:1024],
        }
    )
