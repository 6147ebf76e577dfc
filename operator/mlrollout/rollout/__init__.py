"""The pure rollout core: decide() maps (spec, status, observed, now) to a Decision. No I/O, no clock."""

from mlrollout.rollout.decision import Decision, decide

__all__ = ["Decision", "decide"]
