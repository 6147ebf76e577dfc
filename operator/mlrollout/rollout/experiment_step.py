"""The step result of the experiment strategies (shadow, A/B test), in the style of canary.Step.

Outcomes beyond the canary's: `keep-stable` (an A/B test without a winner: the candidate goes, the
stable version stays, nothing was wrong with it), `continue` (shadow passed: go on into the canary of
`continueWith`), `reject` (shadow failed: the candidate never served a caller and goes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlrollout.api.status import RolloutStatus
from mlrollout.rollout.actions import Action, ConfigureMirror

__all__ = ["ConfigureMirror", "ExperimentAction", "ExperimentOutcome", "StepResult"]

ExperimentOutcome = Literal[
    "moving", "waiting", "held", "analysis-paused", "promote", "rollback", "keep-stable", "continue", "reject"
]


ExperimentAction = Action  # ConfigureMirror is one of the actions (rollout.actions)


@dataclass(frozen=True)
class StepResult:
    rollout: RolloutStatus
    actions: tuple[ExperimentAction, ...]
    outcome: ExperimentOutcome
    reason: str
    message: str
    requeue_after: float | None
