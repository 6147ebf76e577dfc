"""The pure rollout core: decide() maps (spec, status, observed, now) to a Decision. No I/O, no clock."""

from mlrollout.rollout.decision import Decision, decide, reject_spec

__all__ = ["Decision", "decide", "reject_spec"]
