"""Monitoring in the pure core: the monitor's CronJob follows the stable version, and the verdict the
monitor Job writes into status.monitoring becomes the Drift condition, with an Event whenever it
changes. The operator reads status.monitoring and never writes it (two writers, disjoint fields).

A run that could not judge (no reference, too few rows, an unreadable log) is a condition that says
so, with status Unknown: never drift.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from mlrollout.api import conditions as c
from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus
from mlrollout.rollout.actions import Action, ApplyMonitor, DeleteMonitor, EmitEvent
from mlrollout.rollout.observed import Observed

if TYPE_CHECKING:
    from mlrollout.rollout.decision import Decision

AWAITING = "AwaitingFirstRun"
NO_LOG = "NoInferenceLog"
SHOWN_COLUMNS = 3
_VERDICT_REASONS: dict[str, tuple[c.ConditionStatus, str]] = {
    "Drift": ("True", "DriftDetected"),
    "NoDrift": ("False", "NoDrift"),
    "Insufficient": ("Unknown", "InsufficientData"),
    "Error": ("Unknown", "MonitorError"),
}
Reading = tuple[c.ConditionStatus, str, str]


def attach(spec: ModelDeploymentSpec, observed: Observed, decision: Decision, now: datetime) -> Decision:
    """The monitor's children and the Drift condition added to a tick's decision."""
    actions = () if observed.paused else children(spec, decision.status, observed)
    conditions, events = verdict(spec, decision.status, observed.generation, now)
    status = decision.status.model_copy(update={"conditions": conditions})
    return replace(decision, actions=(*decision.actions, *actions, *events), status=status)


def children(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed
) -> tuple[Action, ...]:
    """The CronJob for the stable version once one is pinned; gone when monitoring is switched off."""
    monitoring = spec.monitoring
    if (
        monitoring is not None
        and monitoring.inference_log_uri is not None
        and status.stable_version is not None
        and status.model_name is not None
    ):
        return (ApplyMonitor(status.model_name, status.stable_version),)
    return on_delete(observed)


def on_delete(observed: Observed) -> tuple[Action, ...]:
    return (DeleteMonitor(),) if observed.monitor_present else ()


def verdict(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, generation: int, now: datetime
) -> tuple[list[c.Condition], list[Action]]:
    """The Drift condition from status.monitoring; an Event when its reason (the verdict) changes."""
    if spec.monitoring is None:
        return [x for x in status.conditions if x.type != c.DRIFT], []
    flag, reason, message = reading(spec, status)
    previous = c.find(status.conditions, c.DRIFT)
    conditions = c.set_condition(status.conditions, c.DRIFT, flag, reason, message, now, generation)
    changed = reason != (previous.reason if previous is not None else AWAITING)
    if not changed or reason == AWAITING:
        return conditions, []
    troubled = flag == "True" or reason not in ("NoDrift", "InsufficientData")
    return conditions, [EmitEvent("Warning" if troubled else "Normal", reason, message)]


def reading(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Reading:
    assert spec.monitoring is not None
    if spec.monitoring.inference_log_uri is None:
        return "Unknown", NO_LOG, "set spec.monitoring.inferenceLogUri: the serving pods log nowhere"
    m = status.monitoring
    if m is None or m.last_run is None:
        return "Unknown", AWAITING, f"the monitor has not run yet (schedule {spec.monitoring.schedule})"
    if m.version is not None and status.stable_version is not None and m.version != status.stable_version:
        return "Unknown", AWAITING, f"version {status.stable_version} not monitored yet (last: {m.version})"
    if m.reason and m.reason != "InsufficientData":
        return "Unknown", m.reason, m.message or m.reason
    if m.verdict is None:
        return "Unknown", AWAITING, m.message or "no verdict yet"
    flag, reason = _VERDICT_REASONS[m.verdict]
    return flag, reason, "; ".join(x for x in (_describe(m), _off_bounds(spec, m)) if x)[:1024]


def _off_bounds(spec: ModelDeploymentSpec, m: MonitoringStatus) -> str:
    """The performance metric against spec.monitoring.performance's bounds (retraining acts on it)."""
    check = spec.monitoring.performance if spec.monitoring else None
    value = (m.performance or {}).get(check.metric) if check else None
    if check is None or value is None:
        return ""
    if check.min is not None and value < check.min:
        return f"{check.metric} {value:.3g} below min {check.min:g}"
    if check.max is not None and value > check.max:
        return f"{check.metric} {value:.3g} above max {check.max:g}"
    return ""


def _describe(m: MonitoringStatus) -> str:
    parts: list[str] = []
    if m.verdict == "Drift":
        drifted = [col for col in m.columns if col.drifted]
        shown = ", ".join(
            f"{col.column} ({col.test} p={col.p_value:.2g}, effect {col.effect_size:.2g})"
            if col.p_value is not None and col.effect_size is not None
            else col.column
            for col in drifted[:SHOWN_COLUMNS]
        )
        more = f" and {len(drifted) - SHOWN_COLUMNS} more" if len(drifted) > SHOWN_COLUMNS else ""
        parts.append(f"drift in {shown}{more}")
    elif m.verdict == "NoDrift":
        parts.append("no drift")
    elif m.message:
        parts.append(m.message)
    if m.drift_share is not None and m.verdict in ("Drift", "NoDrift"):
        parts.append(f"{m.drift_share:.0%} of columns drifted over {m.samples or 0} rows")
    if m.prediction_drift is not None and m.prediction_drift.drifted:
        parts.append("predictions drifted")
    if m.performance:
        figures = ", ".join(f"{k}={v:.3g}" for k, v in sorted(m.performance.items()))
        parts.append(f"{figures} over {m.labelled_samples or 0} labelled rows")
    return "; ".join(parts)[:1024]
