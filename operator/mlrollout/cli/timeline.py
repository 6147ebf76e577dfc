"""`kubectl mlrollout history`'s first part: releases, rollbacks and retrainings, newest first, each
with its cause (which signal, its value, the threshold), kept apart so nobody confuses a rollback (a
bad release) with a retraining (a stale model). Pure: built from the status and MLflow tags.

Sources: status.history (promotions and their cause), status.retraining (the last training: trigger
and reason, Job, outcome), status.rollout (the last rollback or rejection) and the versions' tags
(mlrollout.rollout = rolled_back | rejected | aborted with .reason and .at: every earlier one too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CAUSE_WIDTH = 160
NOT_PROMOTED = {"rolled_back": "rolled back", "rejected": "rejected", "aborted": "aborted"}


@dataclass(frozen=True)
class Row:
    when: str  # ISO time as recorded, or "-" when unknown (the newest: only the last outcome lacks one)
    event: str  # promoted | rolled back | rejected | aborted | training | retrained | training failed
    version: str
    cause: str


def _sort_key(row: Row) -> tuple[int, float]:
    if row.when == "-":
        return (1, 0.0)
    try:
        parsed = datetime.fromisoformat(row.when.replace("Z", "+00:00"))
    except ValueError:
        return (0, 0.0)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (0, parsed.timestamp())


def _s(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def rows(status: Mapping[str, Any], tags: Mapping[str, Mapping[str, str]] | None) -> list[Row]:
    """Every known event, newest first."""
    tags = tags or {}
    found: list[Row] = []
    for entry in status.get("history") or []:
        found.append(
            Row(_s(entry.get("promotedAt")), "promoted", _s(entry.get("version")), _s(entry.get("cause")))
        )
    found += _retraining(status.get("retraining") or {})
    rollout = status.get("rollout") or {}
    aborted = str(rollout.get("abortedVersion") or "")
    last = str(rollout.get("lastOutcome") or "-")
    for version, version_tags in tags.items():
        outcome = version_tags.get("mlrollout.rollout")
        if outcome in NOT_PROMOTED:
            why = version_tags.get("mlrollout.rollout.reason") or (last if version == aborted else "-")
            when = _s(version_tags.get("mlrollout.rollout.at"))
            found.append(Row(when, NOT_PROMOTED[outcome], version, why))
    if aborted and tags.get(aborted, {}).get("mlrollout.rollout") not in NOT_PROMOTED:
        # the registry not reached, or the tag not written yet: the status has the last one
        event = next((e for e in NOT_PROMOTED.values() if f" {e}" in last), "not promoted")
        found.append(Row("-", event, aborted, last))
    return sorted(found, key=_sort_key, reverse=True)


def _retraining(state: Mapping[str, Any]) -> list[Row]:
    phase = state.get("state")
    if phase not in ("Training", "Trained", "Failed"):
        return []
    trigger, reason, job = _s(state.get("trigger")), _s(state.get("reason")), _s(state.get("job"))
    cause = f"{trigger}: {reason} (Job {job})"
    if phase == "Training":
        return [Row(_s(state.get("startedAt")), "training", "-", cause)]
    if phase == "Trained":
        return [Row(_s(state.get("finishedAt")), "retrained", _s(state.get("version")), cause)]
    failures = state.get("failures") or 1
    next_at = state.get("nextAttemptAt")
    retry = f"; next attempt after {next_at}" if next_at else ""
    failed = f"{_s(state.get('message'))}; {failures} failure(s) in a row{retry}; it was started by {cause}"
    return [Row(_s(state.get("finishedAt")), "training failed", "-", failed)]


def table(found: Sequence[Row]) -> list[str]:
    if not found:
        return []
    width = max(len("WHEN"), *(len(r.when) for r in found))
    lines = [f"{'WHEN':<{width}}  {'EVENT':<15}  {'VERSION':<7}  CAUSE"]
    for r in found:
        cause = r.cause if len(r.cause) <= CAUSE_WIDTH else r.cause[: CAUSE_WIDTH - 3] + "..."
        lines.append(f"{r.when:<{width}}  {r.event:<15}  {r.version:<7}  {cause}")
    return lines
