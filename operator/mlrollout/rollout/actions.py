"""What decide() asks the adapters to do: intents, not manifests (builders live in the adapters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ApplyServing:
    """Create or update the serving Deployment of one track, pinned to an exact model version."""

    track: str
    model_name: str
    version: str


@dataclass(frozen=True)
class ApplyService:
    """The Service that carries live traffic to the model."""


@dataclass(frozen=True)
class DeleteServing:
    track: str


@dataclass(frozen=True)
class DeleteService:
    """Remove the live-traffic Service (on delete)."""


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = ApplyServing | ApplyService | DeleteServing | DeleteService | EmitEvent
