"""The A/B statistics by simulation (fixed seeds, 2,000 experiments each, analysed after every batch).

A/A (no true effect): the mSPRT declares a winner in at most alpha (+ a binomial margin) of the
experiments although it looks 50 times; the classic mistake, a fixed-horizon z-test looked at after
every batch, exceeds alpha on the very same data; the fixed-horizon test looked at once, at its
planned sample, holds alpha. A/B with the minimum detectable effect: the mSPRT finds the better
variant in at least `power` (- margin) of runs within its planned maximum sample, and the
fixed-horizon test at its planned sample has the planned power, which checks the sample-size formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlrollout.rollout.abtest.planning import Plan, plan
from mlrollout.rollout.abtest.sequential import FloatArray, MetricKind
from mlrollout.rollout.abtest.simulation import (
    Draw,
    fixed_horizon,
    msprt,
    naive_peeking,
    simulate,
    simulate_draws,
)

ALPHA, POWER = 0.05, 0.8
EXPERIMENTS, BATCHES = 2000, 50
CASES = [
    # kind, share, stable mean, mde, sd
    ("proportion", 0.5, 0.10, 0.02, 0.0),
    ("proportion", 0.2, 0.10, 0.02, 0.0),
    ("mean", 0.5, 10.0, 0.5, 5.0),
    ("mean", 0.3, 10.0, 0.5, 5.0),
]


def margin(rate: float, errors: float = 3.0) -> float:
    """Binomial standard errors of a rate estimated from EXPERIMENTS runs: 3 for one-sided bounds,
    4 for the two-sided "equals the nominal rate" checks (eight of them run, on fixed seeds)."""
    return errors * math.sqrt(rate * (1.0 - rate) / EXPERIMENTS)


def plan_for(kind: MetricKind, share: float, base: float, mde: float, sd: float) -> tuple[Plan, int]:
    p = plan(
        kind,
        mde,
        ALPHA,
        POWER,
        share,
        baseline=base if kind == "proportion" else None,
        variance=sd**2 if kind == "mean" else None,
    )
    batch = math.ceil((p.sequential_stable + p.sequential_candidate) / BATCHES)
    return p, batch


@pytest.mark.parametrize(("kind", "share", "base", "mde", "sd"), CASES)
def test_aa_false_winner_rate(kind: MetricKind, share: float, base: float, mde: float, sd: float) -> None:
    p, batch = plan_for(kind, share, base, mde, sd)
    arms = simulate(np.random.default_rng(20261123), kind, EXPERIMENTS, BATCHES, batch, share, base, base, sd)
    stop = (p.sequential_stable, p.sequential_candidate)
    sequential = float(np.mean(msprt(kind, arms, p.mixing_variance, ALPHA, stop).direction != 0))
    peeking = float(np.mean(naive_peeking(kind, arms, ALPHA).direction != 0))
    once = float(np.mean(fixed_horizon(kind, arms, ALPHA, p.fixed_stable, p.fixed_candidate).direction != 0))
    print(f"\nA/A {kind} share={share}: mSPRT {sequential:.4f}, peeking {peeking:.4f}, fixed {once:.4f}")
    assert sequential <= ALPHA + margin(ALPHA)
    assert peeking > ALPHA + margin(ALPHA)  # the classic mistake, on the same experiments
    assert abs(once - ALPHA) <= margin(ALPHA, 4.0)


@pytest.mark.parametrize(("kind", "share", "base", "mde", "sd"), CASES)
def test_ab_power_at_the_minimum_detectable_effect(
    kind: MetricKind, share: float, base: float, mde: float, sd: float
) -> None:
    p, batch = plan_for(kind, share, base, mde, sd)
    arms = simulate(np.random.default_rng(7), kind, EXPERIMENTS, BATCHES, batch, share, base, base + mde, sd)
    sequential = msprt(kind, arms, p.mixing_variance, ALPHA, (p.sequential_stable, p.sequential_candidate))
    once = fixed_horizon(kind, arms, ALPHA, p.fixed_stable, p.fixed_candidate)
    power = float(np.mean(sequential.direction == 1))
    wrong_way = float(np.mean(sequential.direction == -1))
    fixed_power = float(np.mean(once.direction == 1))
    fixed_n = p.fixed_stable + p.fixed_candidate
    average = float(np.mean(sequential.stopped_at_requests)) / fixed_n
    print(
        f"\nA/B {kind} share={share}: mSPRT power {power:.4f} (wrong way {wrong_way:.4f}),"
        f" fixed power {fixed_power:.4f}, mSPRT mean sample {average:.2f} x fixed"
    )
    assert power >= POWER - margin(POWER)
    assert wrong_way <= margin(ALPHA)
    assert abs(fixed_power - POWER) <= margin(POWER, 4.0)
    # it stops early when it can: on average far below its own maximum
    assert average < 0.75 * (p.sequential_stable + p.sequential_candidate) / fixed_n


@pytest.mark.parametrize(("base", "mde"), [(0.005, 0.002), (0.02, 0.005)])
def test_aa_rare_outcomes_looked_at_every_hundred_requests(base: float, mde: float) -> None:
    """The harshest schedule the operator allows: an analysis every ~100 requests per arm from the
    burn-in's 100 on, with rare conversions (plug-in variances are noisiest there)."""
    p = plan("proportion", mde, ALPHA, POWER, 0.5, baseline=base)
    stop = (p.sequential_stable, p.sequential_candidate)
    batches = math.ceil(sum(stop) / 200)
    arms = simulate(np.random.default_rng(11), "proportion", EXPERIMENTS, batches, 200, 0.5, base, base)
    rate = float(np.mean(msprt("proportion", arms, p.mixing_variance, ALPHA, stop).direction != 0))
    print(f"\nA/A rare proportion {base}: {batches} analyses, mSPRT {rate:.4f}")
    assert rate <= ALPHA + margin(ALPHA)


def revenue(conversion: float) -> Draw:
    """Revenue per request: zero unless the user buys (then lognormal, mean ~33): skewed, heavy-tailed."""

    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
        bought = rng.random(shape) < conversion
        return np.where(bought, rng.lognormal(3.0, 1.0, shape), 0.0)

    return draw


def test_aa_skewed_revenue() -> None:
    """A mean metric that is nothing like normal per request (90% zeros, lognormal purchases)."""
    rng = np.random.default_rng(5)
    sample = revenue(0.1)(rng, (1, 400_000))
    mean, variance = float(sample.mean()), float(sample.var())
    p = plan("mean", 0.4 * mean, ALPHA, POWER, 0.5, variance=variance)
    stop = (p.sequential_stable, p.sequential_candidate)
    batch = 200
    batches = math.ceil(sum(stop) / batch)
    experiments = 1000
    arms = simulate_draws(rng, experiments, batches, batch, 0.5, revenue(0.1), revenue(0.1))
    sequential = float(np.mean(msprt("mean", arms, p.mixing_variance, ALPHA, stop).direction != 0))
    peeking = float(np.mean(naive_peeking("mean", arms, ALPHA).direction != 0))
    print(f"\nA/A skewed revenue, {batches} analyses: mSPRT {sequential:.4f}, peeking {peeking:.4f}")
    bound = ALPHA + 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    assert sequential <= bound < peeking
