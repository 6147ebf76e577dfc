"""Kubernetes-style conditions: set one, keeping lastTransitionTime when its status is unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
PAUSED = "Paused"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, PAUSED)
DRIFT = "Drift"  # only with spec.monitoring: the monitor's last verdict on the stable version


class Condition(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    type: str = Field(min_length=1, max_length=316)
    status: ConditionStatus
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return conditions with `type_` set; its transition time moves only when its status changes."""
    previous = find(conditions, type_)
    since = previous.last_transition_time if previous is not None and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=observed_generation,
    )
    result = [c for c in conditions if c.type != type_]
    result.append(updated)
    return sorted(result, key=_order)


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def _order(condition: Condition) -> tuple[int, str]:
    known = (
        CONDITION_TYPES.index(condition.type) if condition.type in CONDITION_TYPES else len(CONDITION_TYPES)
    )
    return known, condition.type
