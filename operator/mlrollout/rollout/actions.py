"""What decide() asks the adapters to do: intents with their parameters, not manifests.

Every action is safe to replay: applying the same Deployment twice, deleting what is gone, moving
an alias to where it already points or setting a tag to its value changes nothing. Children are
acted on before status is written, so a crash in between repeats the same actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ApplyServing:
    """Create or update the serving Deployment of one track, pinned to an exact model version."""

    track: str
    model_name: str
    version: str
    replicas: int | None = None  # None: spec.serving.replicas


@dataclass(frozen=True)
class ApplyService:
    """The Service that carries live traffic to the model (every live track behind one selector)."""


@dataclass(frozen=True)
class DeleteServing:
    track: str


@dataclass(frozen=True)
class DeleteService:
    """Remove the live-traffic Service (on delete)."""


@dataclass(frozen=True)
class MoveAlias:
    """Point a registry alias (the champion) at a version: promotion, or undo."""

    model_name: str
    alias: str
    version: str


@dataclass(frozen=True)
class TagVersion:
    """Record an outcome on a model version in the registry (its lineage)."""

    model_name: str
    version: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = ApplyServing | ApplyService | DeleteServing | DeleteService | MoveAlias | TagVersion | EmitEvent
