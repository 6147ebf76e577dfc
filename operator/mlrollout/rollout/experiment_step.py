"""The step result of the experiment strategies (shadow, A/B test), in the style of canary.Step.

Outcomes beyond the canary's: `keep-stable` (an A/B test without a winner: the candidate goes, the
stable version stays, nothing was wrong with it), `continue` (shadow passed: go on into the canary of
`continueWith`), `reject` (shadow failed: the candidate never served a caller and goes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlrollout.api.status import RolloutStatus
from mlrollout.rollout.actions import Action

ExperimentOutcome = Literal[
    "moving", "waiting", "held", "analysis-paused", "promote", "rollback", "keep-stable", "continue", "reject"
]


@dataclass(frozen=True)
class ConfigureMirror:
    """Mirror `percent` % of the stable pods' requests to `target_track` through the runtime's mounted
    live config (a ConfigMap: the stable pods reload it, they are not restarted). 0 switches it off."""

    percent: int
    target_track: str


ExperimentAction = Action | ConfigureMirror


@dataclass(frozen=True)
class StepResult:
    rollout: RolloutStatus
    actions: tuple[ExperimentAction, ...]
    outcome: ExperimentOutcome
    reason: str
    message: str
    requeue_after: float | None
