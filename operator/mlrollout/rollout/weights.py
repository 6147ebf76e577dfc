"""Replica-ratio weight math, pure: a weight becomes replica counts of stable and canary, and the
replicas actually available give the weight actually served (approximate by nature)."""

from __future__ import annotations

import math


def replica_split(total: int, canary_weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for `canary_weight` % with the larger side at `total`.

    Capacity never drops below `total` (5 % of 4 replicas is one canary pod beside four stable
    ones), and the smaller side has at least one pod while its share is above zero.
    """
    total = max(total, 1)
    if canary_weight <= 0:
        return total, 0
    if canary_weight >= 100:
        return 0, total
    if canary_weight <= 50:
        return total, max(1, math.floor(total * canary_weight / (100 - canary_weight) + 0.5))
    return max(1, math.floor(total * (100 - canary_weight) / canary_weight + 0.5)), total


def served_weight(stable_available: int, canary_available: int) -> int:
    """The canary's share of ready replicas, in percent (0 when nothing is ready)."""
    ready = stable_available + canary_available
    return 0 if ready == 0 else round(100 * canary_available / ready)


def routed_split(total: int, canary_weight: int) -> tuple[int, int]:
    """(stable, canary) replicas behind a router that splits requests itself (Gateway API, Istio).

    Stable keeps its full size; the canary gets capacity for its share and at least one pod, even at
    weight 0, so a tester pinned by header reaches it before any live traffic does.
    """
    total = max(total, 1)
    return total, max(1, math.ceil(total * max(0, min(canary_weight, 100)) / 100))
