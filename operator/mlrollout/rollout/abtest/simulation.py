"""Vectorised A/B experiments for the statistics tests and `make bench-abtest` (not used by the operator).

Each experiment sends `batches` batches of `batch` requests; every request goes to the candidate with
probability `share` (per-request assignment, as with the replica-ratio router). After every batch the
cumulative per-arm counts are analysed by the operator's own functions (on arrays of all experiments
at once). Mean metrics are normal per request: the batch sum is N(n mu, n sigma^2) and, independent of
it for normal data, the sum of squares is sum^2 / n + sigma^2 chi2(n - 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlrollout.rollout.abtest import sequential as sq
from mlrollout.rollout.abtest.sequential import FloatArray, MetricKind


@dataclass(frozen=True)
class Arms:
    """Cumulative counts after each batch, shape (experiments, batches)."""

    stable_n: FloatArray
    stable_total: FloatArray
    stable_squares: FloatArray | None
    candidate_n: FloatArray
    candidate_total: FloatArray
    candidate_squares: FloatArray | None


def _arm(
    rng: np.random.Generator, kind: MetricKind, n: npt.NDArray[np.int64], mean: float, sd: float
) -> tuple[FloatArray, FloatArray | None]:
    if kind == "proportion":
        return rng.binomial(n, mean).astype(np.float64), None
    nf = n.astype(np.float64)
    total = rng.normal(nf * mean, np.sqrt(nf) * sd)
    within = sd**2 * rng.chisquare(np.maximum(nf - 1.0, 1.0)) * (nf > 1)
    squares = np.where(nf > 0, total**2 / np.maximum(nf, 1.0) + within, 0.0)
    return total, squares


def simulate(
    rng: np.random.Generator,
    kind: MetricKind,
    experiments: int,
    batches: int,
    batch: int,
    share: float,
    stable_mean: float,
    candidate_mean: float,
    sd: float = 0.0,
) -> Arms:
    candidate_n = rng.binomial(batch, share, size=(experiments, batches))
    stable_n = batch - candidate_n
    s_total, s_sq = _arm(rng, kind, stable_n, stable_mean, sd)
    c_total, c_sq = _arm(rng, kind, candidate_n, candidate_mean, sd)

    def cum(a: FloatArray | None) -> FloatArray | None:
        return None if a is None else np.cumsum(a, axis=1)

    return Arms(
        stable_n=np.cumsum(stable_n, axis=1).astype(np.float64),
        stable_total=np.cumsum(s_total, axis=1),
        stable_squares=cum(s_sq),
        candidate_n=np.cumsum(candidate_n, axis=1).astype(np.float64),
        candidate_total=np.cumsum(c_total, axis=1),
        candidate_squares=cum(c_sq),
    )


Draw = Callable[[np.random.Generator, tuple[int, int]], FloatArray]


def simulate_draws(
    rng: np.random.Generator,
    experiments: int,
    batches: int,
    batch: int,
    share: float,
    stable: Draw,
    candidate: Draw,
) -> Arms:
    """A mean metric from per-request draws of any distribution (e.g. revenue: mostly zero, skewed)."""
    shape = (experiments, batches)
    n = {arm: np.zeros(shape) for arm in ("s", "c")}
    total = {arm: np.zeros(shape) for arm in ("s", "c")}
    squares = {arm: np.zeros(shape) for arm in ("s", "c")}
    for k in range(batches):
        to_candidate = rng.random((experiments, batch)) < share
        for arm, draw, mask in (("s", stable, ~to_candidate), ("c", candidate, to_candidate)):
            values = np.where(mask, draw(rng, (experiments, batch)), 0.0)
            n[arm][:, k] = mask.sum(axis=1)
            total[arm][:, k] = values.sum(axis=1)
            squares[arm][:, k] = (values**2).sum(axis=1)
    return Arms(
        stable_n=np.cumsum(n["s"], axis=1),
        stable_total=np.cumsum(total["s"], axis=1),
        stable_squares=np.cumsum(squares["s"], axis=1),
        candidate_n=np.cumsum(n["c"], axis=1),
        candidate_total=np.cumsum(total["c"], axis=1),
        candidate_squares=np.cumsum(squares["c"], axis=1),
    )


def estimates(kind: MetricKind, arms: Arms) -> tuple[FloatArray, FloatArray]:
    s_mean, s_var = sq.moments(kind, arms.stable_n, arms.stable_total, arms.stable_squares)
    c_mean, c_var = sq.moments(kind, arms.candidate_n, arms.candidate_total, arms.candidate_squares)
    return sq.difference(s_mean, s_var, arms.stable_n, c_mean, c_var, arms.candidate_n)


@dataclass(frozen=True)
class Outcomes:
    """Per experiment: which way the test decided (+1 candidate better, -1 worse, 0 none) and when."""

    direction: npt.NDArray[np.int64]
    stopped_at_requests: FloatArray  # total requests (both arms) when it decided, or at the end


def msprt(
    kind: MetricKind, arms: Arms, tau2: float, alpha: float, stop_at: tuple[int, int] | None = None
) -> Outcomes:
    """As the operator runs it: stops at the first analysis where both arms reached `stop_at` (the
    planned maximum), after testing that analysis."""
    estimate, variance = estimates(kind, arms)
    p = sq.always_valid_p(sq.msprt_log_e_value(estimate, variance, tau2))
    hit: npt.NDArray[np.bool_] = np.asarray(p <= alpha)
    if stop_at is not None:
        reached = (arms.stable_n >= stop_at[0]) & (arms.candidate_n >= stop_at[1])
        # looks after the first one that reached it never happen
        after = (np.cumsum(reached, axis=1) - reached.astype(np.int64)) > 0
        hit = np.logical_and(hit, np.logical_not(after))
    return _first_crossing(hit, estimate, arms)


def naive_peeking(kind: MetricKind, arms: Arms, alpha: float) -> Outcomes:
    """The classic mistake: a fixed-horizon z-test looked at after every batch, stopped when significant."""
    estimate, variance = estimates(kind, arms)
    return _first_crossing(sq.z_significant(estimate, variance, alpha), estimate, arms)


def fixed_horizon(kind: MetricKind, arms: Arms, alpha: float, stable: int, candidate: int) -> Outcomes:
    """Decide once, at the first batch where both arms reached the planned sample."""
    estimate, variance = estimates(kind, arms)
    reached = (arms.stable_n >= stable) & (arms.candidate_n >= candidate)
    first = np.argmax(reached, axis=1)
    rows = np.arange(reached.shape[0])
    significant = sq.z_significant(estimate, variance, alpha)[rows, first] & reached[rows, first]
    direction = np.where(significant, np.sign(estimate[rows, first]), 0).astype(np.int64)
    total = (arms.stable_n + arms.candidate_n)[rows, first]
    return Outcomes(direction, total)


def _first_crossing(hit: npt.NDArray[np.bool_], estimate: FloatArray, arms: Arms) -> Outcomes:
    rows = np.arange(hit.shape[0])
    any_hit = hit.any(axis=1)
    first = np.where(any_hit, np.argmax(hit, axis=1), hit.shape[1] - 1)
    direction = np.where(any_hit, np.sign(estimate[rows, first]), 0).astype(np.int64)
    total = (arms.stable_n + arms.candidate_n)[rows, first]
    return Outcomes(direction, total)
