"""The validation gate of a candidate, pure: which Job to run, and what its result means.

Before any traffic moves, a candidate of a spec with `validation` is gated by a Job (one per attempt,
deterministic name). Its result has three meanings that must never be confused:
- passed: the strategy proceeds;
- ran and failed: the candidate is rejected (tagged, never re-gated until `retry` or a newer version);
- could not run (dataset missing, registry down, pod failing, deadline): retried with backoff, a
  condition says why; never a rejection, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlrollout.api import names
from mlrollout.api.gate import GateCheck, GateReport, GateStatus
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.rollout import backoff
from mlrollout.rollout.actions import Action, ApplyGateJob, DeleteJob, EmitEvent, TagVersion
from mlrollout.rollout.polls import ChildPoll

GateResult = GateReport | JobRunning | JobCouldNotRun
POLL_WHILE_RUNNING = ChildPoll(5.0)  # the gate Job (watched) finishing
TAG_GATE = "mlrollout.gate"


@dataclass(frozen=True)
class GateStep:
    """proceed: the strategy may move traffic; hold: stay Validating; reject: back to stable."""

    outcome: Literal["proceed", "hold", "reject"]
    rollout: RolloutStatus
    actions: tuple[Action, ...] = ()
    reason: str = ""
    message: str = ""
    requeue_after: float | None = None


def job_name(deployment: str, version: str, attempt: int) -> str:
    """Equal to adapters.k8s.jobs.gate_job_name (checked by a test): the core records it in status."""
    return names.child_name(deployment, f"gate-{version}-{attempt}")


def step(
    spec: ModelDeploymentSpec,
    rollout: RolloutStatus,
    result: GateResult | None,
    deployment: str,
    spec_changed: bool,
    now: datetime,
) -> GateStep:
    """One tick of the candidate's gate. `result`: the recorded Job as read back (None: not found)."""
    candidate = rollout.candidate
    assert candidate is not None, "the gate judges a candidate"
    gate = rollout.gate
    if spec.validation is None:
        # No gate asked for (or it was removed from the spec): a Job still running is cancelled.
        return GateStep("proceed", rollout.model_copy(update={"gate": None}), cancel(rollout))
    actions: list[Action] = []
    if gate is not None and gate.version != candidate.version:
        actions += cancel(rollout)
        gate = None
    if gate is None:
        return _start(rollout, candidate.version, 1, deployment, now, actions)
    if gate.phase == "Passed":
        return GateStep("proceed", rollout)
    if gate.phase == "Failed":
        # A rejection folds the candidate away in the same tick: a failed gate seen here is a
        # `retry` of the rejected version. The next attempt is a new Job; the failed one stays.
        return _start(rollout, candidate.version, gate.attempt + 1, deployment, now, [])
    if gate.phase == "Error":
        due = gate.next_attempt_at is None or now >= gate.next_attempt_at or spec_changed
        if due:
            return _start(
                rollout, candidate.version, gate.attempt + 1, deployment, now, [DeleteJob(gate.job)]
            )
        return _could_not_run_hold(rollout, gate, now)
    # Running.
    if result is None:
        # Created this tick and not read back yet, or deleted by someone: (re)create it, idempotently.
        return _hold_running(rollout, gate, [ApplyGateJob(candidate.version, gate.attempt)])
    if isinstance(result, JobRunning):
        return _hold_running(rollout, gate, [], result.last_error)
    if isinstance(result, GateReport) and result.outcome == "passed":
        passed = _finished(gate, "Passed", result, now)
        message = f"version {candidate.version} passed the gate: {_summary(result.checks) or 'no checks'}"
        # Pauses count from the moment traffic may move, not from when the version appeared.
        updated = rollout.model_copy(update={"gate": passed, "step_started_at": now})
        return GateStep(
            "proceed",
            updated,
            (
                TagVersion(candidate.model_name, candidate.version, ((TAG_GATE, "passed"),)),
                EmitEvent("Normal", "GatePassed", f"{candidate.model_name} {message}"[:1024]),
            ),
            "GatePassed",
            message,
        )
    if isinstance(result, GateReport) and result.outcome == "failed":
        failed = _finished(gate, "Failed", result, now)
        return _reject(rollout, failed, candidate.model_name, now)
    # Could not run: a report with outcome `error`, or a Job that finished without one.
    reason, why = (
        ("GateCouldNotRun", result.reason or "the gate Job could not run")
        if isinstance(result, GateReport)
        else (result.reason, result.message)
    )
    wait = backoff.delay(gate.attempt)
    errored = gate.model_copy(
        update={
            "phase": "Error",
            "finished_at": now,
            "checks": result.checks if isinstance(result, GateReport) else [],
            "reason": f"{reason}: {why}"[:1024],
            "next_attempt_at": now + wait,
        }
    )
    updated = rollout.model_copy(update={"gate": errored})
    message = _could_not_run_message(errored)
    event = EmitEvent("Warning", "GateCouldNotRun", f"{candidate.model_name} {message}"[:1024])
    return GateStep("hold", updated, (event,), "GateCouldNotRun", message, wait.total_seconds())


def cancel(rollout: RolloutStatus) -> tuple[Action, ...]:
    """The Job of a gate still running or waiting to retry (superseded, withdrawn, aborted): delete it.

    Jobs of gates that passed or failed stay (their pods hold the report) until the owner goes.
    """
    gate = rollout.gate
    if gate is None or gate.phase not in ("Running", "Error"):
        return ()
    return (DeleteJob(gate.job),)


def rejected_message(rollout: RolloutStatus) -> str | None:
    """Why the version the model resolves to stays rejected (None: it was not rejected by the gate)."""
    gate = rollout.gate
    if gate is None or gate.phase != "Failed" or gate.version != rollout.aborted_version:
        return None
    return f"{rollout.last_outcome or 'rejected at the gate'}; `retry` or a newer version starts again"


def failed_checks(checks: Iterable[GateCheck]) -> str:
    """`metric:roc_auc = 0.7123 (threshold 0.84)`, one per failed check."""
    return "; ".join(_check_text(c) for c in checks if c.verdict == "failed")


def _start(
    rollout: RolloutStatus, version: str, attempt: int, deployment: str, now: datetime, actions: list[Action]
) -> GateStep:
    gate = GateStatus(
        version=version, job=job_name(deployment, version, attempt), attempt=attempt, started_at=now
    )
    candidate = rollout.candidate
    assert candidate is not None
    what = "starts" if attempt == 1 else f"starts again (attempt {attempt})"
    message = f"the gate of version {version} {what}: Job {gate.job}"
    return GateStep(
        "hold",
        rollout.model_copy(update={"gate": gate}),
        (
            *actions,
            ApplyGateJob(version, attempt),
            EmitEvent("Normal", "GateStarted", f"{candidate.model_name}: {message}"),
        ),
        "GateRunning",
        message,
        POLL_WHILE_RUNNING,
    )


def _finished(
    gate: GateStatus, phase: Literal["Passed", "Failed"], report: GateReport, now: datetime
) -> GateStatus:
    """The gate with the Job's report: its checks, the full report's address, why it failed."""
    reason = report.reason if phase == "Failed" else None
    return gate.model_copy(
        update={
            "phase": phase,
            "finished_at": now,
            "checks": report.checks,
            "reason": reason,
            "report_uri": report.report_uri,
        }
    )


def _hold_running(
    rollout: RolloutStatus, gate: GateStatus, actions: list[Action], last_error: str | None = None
) -> GateStep:
    message = f"gate Job {gate.job} validates version {gate.version} (attempt {gate.attempt})"
    if last_error:
        message += f"; its last pod failed: {last_error}"
    return GateStep("hold", rollout, tuple(actions), "GateRunning", message[:1024], POLL_WHILE_RUNNING)


def _could_not_run_message(gate: GateStatus) -> str:
    when = gate.next_attempt_at.isoformat() if gate.next_attempt_at else "now"
    return (
        f"the gate of version {gate.version} could not run (attempt {gate.attempt}): {gate.reason}; "
        f"attempt {gate.attempt + 1} at {when} (never a rejection)"
    )[:1024]


def _could_not_run_hold(rollout: RolloutStatus, gate: GateStatus, now: datetime) -> GateStep:
    remaining = (gate.next_attempt_at - now).total_seconds() if gate.next_attempt_at else 0.0
    message = _could_not_run_message(gate)
    return GateStep("hold", rollout, (), "GateCouldNotRun", message, max(remaining, 1.0))


def _reject(rollout: RolloutStatus, gate: GateStatus, model_name: str, now: datetime) -> GateStep:
    failed = failed_checks(gate.checks) or gate.reason or "the gate failed"
    outcome = f"version {gate.version} rejected at the gate: {failed}"[:1024]
    rejected = RolloutStatus(
        handled_request=rollout.handled_request,
        aborted_version=gate.version,
        last_outcome=outcome,
        gate=gate,
    )
    tags = (
        ("mlrollout.rollout", "rejected"),
        ("mlrollout.rollout.reason", outcome[:500]),
        ("mlrollout.rollout.at", now.isoformat()),
        (TAG_GATE, "failed"),
    )
    return GateStep(
        "reject",
        rejected,
        (
            TagVersion(model_name, gate.version, tags),
            EmitEvent("Warning", "GateFailed", f"{model_name} {outcome}"[:1024]),
        ),
        "GateFailed",
        outcome,
    )


def _summary(checks: Iterable[GateCheck]) -> str:
    return "; ".join(_check_text(c) for c in checks if c.verdict != "skipped")


def _check_text(check: GateCheck) -> str:
    text = check.name
    if check.value is not None:
        text += f" = {check.value:.4g}"
    if check.threshold is not None:
        text += f" (threshold {check.threshold:.4g})"
    if check.verdict not in ("passed", "failed") or (check.value is None and check.message):
        text += f" {check.verdict}" + (f": {check.message}" if check.message else "")
    return text
