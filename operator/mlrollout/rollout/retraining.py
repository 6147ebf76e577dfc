"""One tick of retraining, pure: from the triggers' verdict and the training Job's result to the next
status.retraining, the Job to start (if any) and the Events that say why.

The operator's part is I/O only: read the Job (adapters.k8s.training.read_train_result) while
`state` is Training, call `step`, apply `start` with adapters.k8s.training.train_job (its name is
`start.job`), write `state` to status.retraining, emit `events`, requeue after `requeue_after`.
A version registered by the Job (`registered`) then becomes the candidate: gates first, then the
configured rollout (or the wait for `approve` when autoDeploy is false).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.loop import Retraining
from mlrollout.api.retraining_status import RetrainingStatus, TriggerKind
from mlrollout.api.status import ModelDeploymentStatus
from mlrollout.api.training import TrainReport, TrainResult, train_job_name
from mlrollout.rollout import triggers
from mlrollout.rollout.triggers import Quiet, Retrain, Verdict, Wait

POLL_WHILE_TRAINING = timedelta(seconds=15)
POLL_WHILE_WAITING = timedelta(minutes=1)
MAX_QUIET_REQUEUE = timedelta(hours=1)


@dataclass(frozen=True)
class StartTraining:
    """Apply the training Job `job` (deterministic: replaying the tick applies the same Job)."""

    job: str
    attempt: int
    trigger: TriggerKind
    reason: str
    parent_version: str | None


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str  # CamelCase
    message: str


@dataclass(frozen=True)
class RetrainStep:
    state: RetrainingStatus
    start: StartTraining | None = None
    registered: str | None = None  # a version the Job registered this tick: the next candidate
    events: tuple[Event, ...] = ()
    verdict: Verdict | None = None
    requeue_after: timedelta | None = None


def step(
    deployment: str,
    retraining: Retraining | None,
    status: ModelDeploymentStatus,
    state: RetrainingStatus | None,
    job_result: TrainResult | None,
    created_at: datetime,
    now: datetime,
) -> RetrainStep:
    """`job_result`: what read_train_result says of the Job in state.job (None: the Job is gone)."""
    state = state or RetrainingStatus()
    if state.state == "Training":
        return _follow(state, job_result, now)
    verdict = triggers.evaluate(retraining, status, state, created_at, now)
    if isinstance(verdict, Retrain):
        attempt = state.attempt + 1
        job = train_job_name(deployment, attempt)
        started = triggers.started(state, verdict, job, now)
        start = StartTraining(job, attempt, verdict.trigger, verdict.reason.message, status.stable_version)
        event = Event("Normal", "RetrainingStarted", f"{verdict.message} (Job {job})"[:1024])
        return RetrainStep(started, start, None, (event,), verdict, POLL_WHILE_TRAINING)
    if isinstance(verdict, Wait):
        retry_in = verdict.retry_at - now if verdict.retry_at is not None else POLL_WHILE_WAITING
        return RetrainStep(state, verdict=verdict, requeue_after=max(retry_in, timedelta(seconds=1)))
    requeue = _quiet_requeue(verdict, now)
    benign = next((r.message for r in verdict.reasons if r.signal == "benignDrift"), None)
    if benign is None or benign[:1024] == state.benign_drift:
        return RetrainStep(state, verdict=verdict, requeue_after=requeue)
    # Drift that the policy finds benign is a decision too: say it once, where people look.
    noted = state.model_copy(update={"benign_drift": benign[:1024]})
    event = Event("Normal", "RetrainingNotNeeded", f"retraining (drift) not started: {benign}"[:1024])
    return RetrainStep(noted, events=(event,), verdict=verdict, requeue_after=requeue)


def _quiet_requeue(verdict: Quiet, now: datetime) -> timedelta | None:
    if verdict.next_check is None:
        return None  # nothing changes by time alone: the next monitor run (a status change) wakes us
    return min(max(verdict.next_check - now, timedelta(seconds=1)), MAX_QUIET_REQUEUE)


def _follow(state: RetrainingStatus, result: TrainResult | None, now: datetime) -> RetrainStep:
    job = state.job or "?"
    if isinstance(result, JobRunning):
        if result.last_error and result.last_error != state.message:
            state = state.model_copy(update={"message": result.last_error[:1024]})
        return RetrainStep(state, requeue_after=POLL_WHILE_TRAINING)
    if isinstance(result, TrainReport) and result.outcome == "registered" and result.version:
        done = triggers.succeeded(state, result.version, now)
        measured = result.metric is not None and result.value is not None
        score = f"; {result.metric} {result.value:.4g} on validation" if measured else ""
        message = f"training Job {job} registered version {result.version} ({state.trigger}){score}"
        return RetrainStep(done, registered=result.version, events=(Event("Normal", "Retrained", message),))
    if isinstance(result, JobCouldNotRun):
        why = f"{result.reason}: {result.message}"
    elif isinstance(result, TrainReport):
        why = result.reason or "the trainer reported an error"
    else:
        why = f"training Job {job} is gone"
    broken = triggers.failed(state, why, now)
    assert broken.next_attempt_at is not None
    message = f"training Job {job} failed ({why}); stable untouched"
    retry = (
        f"; next attempt after {broken.next_attempt_at.isoformat()}"
        if broken.failures < triggers.MAX_FAILURES
        else f"; {broken.failures} failures in a row: waiting for new evidence"
    )
    return RetrainStep(
        broken,
        events=(Event("Warning", "RetrainingFailed", (message + retry)[:1024]),),
        requeue_after=broken.next_attempt_at - now,
    )
