"""Phases and the transitions allowed between them, as data: decide() may only move along these edges."""

from __future__ import annotations

from collections.abc import Mapping

from mlrollout.api.status import Phase

P = Phase

# Staying in a phase is always allowed; Paused and Terminating are reachable from everywhere.
TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    # Pending may go straight to Healthy/Degraded: a restarted operator adopts children it made before;
    # -> Progressing: another version resolves before the pinned one is up (as -> Validating with a gate).
    P.PENDING: frozenset({P.VALIDATING, P.DEPLOYING, P.PROGRESSING, P.HEALTHY, P.DEGRADED, P.FAILED}),
    # Validating -> Healthy: rejected at the gate; -> RolledBack: aborted by request while gated.
    P.VALIDATING: frozenset(
        {P.PENDING, P.DEPLOYING, P.PROGRESSING, P.HEALTHY, P.DEGRADED, P.ROLLED_BACK, P.FAILED}
    ),
    # -> Validating: a newer version arrives (after a promotion, or superseding a running canary).
    P.DEPLOYING: frozenset({P.HEALTHY, P.DEGRADED, P.FAILED, P.PROGRESSING, P.VALIDATING}),
    P.PROGRESSING: frozenset({P.HEALTHY, P.DEGRADED, P.ROLLED_BACK, P.DEPLOYING, P.VALIDATING}),
    P.HEALTHY: frozenset({P.DEPLOYING, P.DEGRADED, P.VALIDATING, P.PROGRESSING, P.RETRAINING}),
    P.DEGRADED: frozenset({P.HEALTHY, P.DEPLOYING, P.VALIDATING, P.PROGRESSING, P.ROLLED_BACK, P.FAILED}),
    P.ROLLED_BACK: frozenset({P.HEALTHY, P.DEPLOYING, P.DEGRADED, P.VALIDATING, P.PROGRESSING, P.RETRAINING}),
    P.RETRAINING: frozenset({P.VALIDATING, P.DEPLOYING, P.PROGRESSING, P.HEALTHY, P.DEGRADED, P.FAILED}),
    P.FAILED: frozenset({P.PENDING, P.VALIDATING, P.DEPLOYING, P.PROGRESSING, P.HEALTHY, P.DEGRADED}),
    # Leaving a pause, the phase is derived again from what is observed.
    P.PAUSED: frozenset(set(Phase) - {P.TERMINATING}),
    P.TERMINATING: frozenset(),
}

UNIVERSAL_TARGETS = frozenset({P.PAUSED, P.TERMINATING})

# Phases in which something is wrong: their transition Events are Warnings.
TROUBLED = frozenset({P.DEGRADED, P.FAILED, P.ROLLED_BACK})


def can_transition(source: Phase, target: Phase) -> bool:
    if source == target:
        return True
    if source == P.TERMINATING:
        return False
    return target in UNIVERSAL_TARGETS or target in TRANSITIONS[source]
