"""Sample-size planning for an A/B test of "candidate minus stable", with unequal splits.

The minimum detectable effect is absolute, in the metric's own units (0.02 = two percentage points of
conversion; 0.5 = half a currency unit of revenue per request). With the candidate's share w of the
traffic and a total of N requests, n_stable = (1 - w) N and n_candidate = w N.

Fixed horizon (two-sided z-test at alpha, power 1 - beta):
    N = (z_(1-alpha/2) sqrt(v0) + z_(1-beta) sqrt(v1))^2 / mde^2
where v0 / N and v1 / N are the variance of the estimate under no effect and under an effect of mde:
    proportion: v0 = pbar (1 - pbar) (1/(1-w) + 1/w), pbar = (1-w) p1 + w p2,
                v1 = p1 (1 - p1) / (1-w) + p2 (1 - p2) / w, p2 = p1 +- mde
    mean:       v0 = v1 = sigma^2 (1/(1-w) + 1/w).
For w = 1/2 this is the textbook two-proportion / two-sample formula.

Sequential (mSPRT): mixing variance tau2 = mde^2 (at the fixed-horizon sample of alpha = 0.05 and
power 0.8 this is within 1% of the tau2 that makes the final boundary lowest), and a maximum sample:
the smallest N where an effect of mde clears the mSPRT's boundary at N with probability `power`
(earlier crossings only add power, so the plan is conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlrollout.rollout.abtest.sequential import MetricKind, z_quantile


class PlanError(ValueError):
    """The inputs admit no plan (an effect that would push a proportion out of (0, 1), no variance)."""


@dataclass(frozen=True)
class Plan:
    fixed_stable: int
    fixed_candidate: int
    sequential_stable: int
    sequential_candidate: int
    mixing_variance: float  # tau2 of the mSPRT
    baseline: float | None  # proportion: the stable rate planned for
    variance: float  # per-request variance planned for (proportion: p1 (1 - p1))


def variances(
    kind: MetricKind,
    mde: float,
    share: float,
    higher_is_better: bool,
    baseline: float | None,
    variance: float | None,
) -> tuple[float, float]:
    """(v0, v1): N times the variance of the estimate, under no effect and under an effect of mde."""
    if not 0.0 < share < 1.0:
        raise PlanError(f"candidate share must be inside (0, 1), got {share}")
    if mde <= 0.0:
        raise PlanError(f"minimumDetectableEffect must be positive, got {mde}")
    inverse = 1.0 / (1.0 - share) + 1.0 / share
    if kind == "mean":
        if variance is None or not variance > 0.0:
            raise PlanError("a mean metric needs a positive variance estimate (from the burn-in)")
        return variance * inverse, variance * inverse
    if baseline is None or not 0.0 < baseline < 1.0:
        raise PlanError(f"a proportion needs a baseline inside (0, 1), got {baseline}")
    p1 = baseline
    p2 = p1 + mde if higher_is_better else p1 - mde
    if not 0.0 < p2 < 1.0:
        raise PlanError(
            f"baseline {p1:g} {'+' if higher_is_better else '-'} minimumDetectableEffect {mde:g}"
            " leaves (0, 1): the effect is absolute, in proportion points"
        )
    pbar = (1.0 - share) * p1 + share * p2
    v0 = pbar * (1.0 - pbar) * inverse
    v1 = p1 * (1.0 - p1) / (1.0 - share) + p2 * (1.0 - p2) / share
    return v0, v1


def fixed_horizon_total(v0: float, v1: float, mde: float, alpha: float, power: float) -> float:
    za = z_quantile(1.0 - alpha / 2.0)
    zb = z_quantile(power)
    return (za * math.sqrt(v0) + zb * math.sqrt(v1)) ** 2 / mde**2


def msprt_boundary_z(variance: float, tau2: float, alpha: float) -> float:
    """|theta_hat| / sqrt(V) the mSPRT needs to reject when the estimate's variance is V."""
    evidence = 2.0 * math.log(1.0 / alpha) + math.log(1.0 + tau2 / variance)
    return math.sqrt((1.0 + variance / tau2) * evidence)


def sequential_total(v1: float, mde: float, alpha: float, power: float, tau2: float, start: float) -> float:
    """Smallest N >= start with mde / sqrt(v1/N) >= boundary(v1/N) + z_power (bisection; monotone in N)."""
    zb = z_quantile(power)

    def enough(total: float) -> bool:
        v = v1 / total
        return mde / math.sqrt(v) >= msprt_boundary_z(v, tau2, alpha) + zb

    low, high = start, start
    while not enough(high):
        low, high = high, high * 2.0
    while high - low > 1.0:
        mid = (low + high) / 2.0
        if enough(mid):
            high = mid
        else:
            low = mid
    return high


def plan(
    kind: MetricKind,
    mde: float,
    alpha: float,
    power: float,
    share: float,
    higher_is_better: bool = True,
    baseline: float | None = None,
    variance: float | None = None,
) -> Plan:
    """Raises PlanError on inputs that admit no plan."""
    v0, v1 = variances(kind, mde, share, higher_is_better, baseline, variance)
    fixed = fixed_horizon_total(v0, v1, mde, alpha, power)
    tau2 = mde**2
    sequential = sequential_total(v1, mde, alpha, power, tau2, start=fixed)
    return Plan(
        fixed_stable=math.ceil((1.0 - share) * fixed),
        fixed_candidate=math.ceil(share * fixed),
        sequential_stable=math.ceil((1.0 - share) * sequential),
        sequential_candidate=math.ceil(share * sequential),
        mixing_variance=tau2,
        baseline=baseline if kind == "proportion" else None,
        variance=baseline * (1.0 - baseline) if kind == "proportion" and baseline else float(variance or 0.0),
    )
