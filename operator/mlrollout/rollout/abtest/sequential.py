"""Tests of "candidate minus stable" for a proportion or a mean, on sufficient statistics.

Every function takes numbers or numpy arrays of the same shape (the operator calls them once per
analysis; the simulation tests call them on thousands of experiments at once), so the code the tests
check is the code the operator runs.

The default test is the mixture sequential probability ratio test (mSPRT, Johari, Pekelis & Walsh,
"Always valid inference", 2017): with the difference of means theta_hat ~ N(theta, V) and a normal
mixture theta ~ N(0, tau2) over the alternative, the likelihood ratio against theta = 0 is

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * theta_hat^2 / (2 V (V + tau2)))

a (Gaussian-approximation) martingale under no effect, so P(ever Lambda >= 1/alpha) <= alpha however
often it is looked at. p = min over analyses of 1/Lambda is an always-valid p-value, and inverting
the test gives an always-valid confidence interval. V uses plug-in per-arm variances (unpooled).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MetricKind = Literal["proportion", "mean"]

_NORMAL = NormalDist()


def z_quantile(probability: float) -> float:
    return _NORMAL.inv_cdf(probability)


def moments(
    kind: MetricKind, requests: npt.ArrayLike, total: npt.ArrayLike, squares: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """Per-arm mean and variance of one observation (one request).

    proportion: total = outcomes (conversions), mean = rate, variance = rate (1 - rate).
    mean: total = sum of values, squares = sum of squared values; unbiased sample variance.
    """
    n = np.asarray(requests, dtype=np.float64)
    s = np.asarray(total, dtype=np.float64)
    safe_n = np.maximum(n, 1.0)
    mean = s / safe_n
    if kind == "proportion":
        rate = np.clip(mean, 0.0, 1.0)
        return rate, rate * (1.0 - rate)
    if squares is None:
        raise ValueError("a mean metric needs the sum of squared values to estimate its variance")
    q = np.asarray(squares, dtype=np.float64)
    variance = np.maximum(q - s * s / safe_n, 0.0) / np.maximum(n - 1.0, 1.0)
    return mean, variance


def difference(
    stable_mean: FloatArray,
    stable_variance: FloatArray,
    stable_n: npt.ArrayLike,
    candidate_mean: FloatArray,
    candidate_variance: FloatArray,
    candidate_n: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """The estimate (candidate - stable) and its variance V = var_s / n_s + var_c / n_c."""
    ns = np.maximum(np.asarray(stable_n, dtype=np.float64), 1.0)
    nc = np.maximum(np.asarray(candidate_n, dtype=np.float64), 1.0)
    return candidate_mean - stable_mean, stable_variance / ns + candidate_variance / nc


def msprt_log_e_value(estimate: FloatArray, variance: FloatArray, tau2: float) -> FloatArray:
    """log Lambda; zero (no evidence either way) where the variance is zero (no spread seen yet)."""
    v = np.asarray(variance, dtype=np.float64)
    positive = v > 0.0
    safe_v = np.where(positive, v, 1.0)
    log_e = 0.5 * np.log(safe_v / (safe_v + tau2)) + tau2 * estimate**2 / (2.0 * safe_v * (safe_v + tau2))
    return np.where(positive, log_e, 0.0)


def msprt_half_width(variance: FloatArray, tau2: float, alpha: float) -> FloatArray:
    """Half width of the always-valid (1 - alpha) interval: the theta0 the mSPRT would not reject."""
    v = np.asarray(variance, dtype=np.float64)
    width: FloatArray = np.sqrt(v * (v + tau2) / tau2 * (2.0 * np.log(1.0 / alpha) + np.log((v + tau2) / v)))
    return width


def always_valid_p(log_e_values: FloatArray, previous: float | FloatArray = 1.0) -> FloatArray:
    """Running minimum of 1/Lambda over analyses along the last axis, starting from `previous`."""
    p = np.minimum(1.0, np.exp(-np.asarray(log_e_values, dtype=np.float64)))
    p = np.minimum(p, previous)
    if p.ndim == 0:  # one analysis: the minimum with the previous one is all there is
        return p
    running: FloatArray = np.minimum.accumulate(p, axis=-1)
    return running


def z_statistic(estimate: FloatArray, variance: FloatArray) -> FloatArray:
    v = np.asarray(variance, dtype=np.float64)
    return np.where(v > 0.0, estimate / np.sqrt(np.where(v > 0.0, v, 1.0)), 0.0)


def two_sided_p(z: float) -> float:
    """The fixed-horizon z-test's p-value (scalar: it is computed once, at the planned sample)."""
    return 2.0 * (1.0 - _NORMAL.cdf(abs(z)))


def z_significant(estimate: FloatArray, variance: FloatArray, alpha: float) -> npt.NDArray[np.bool_]:
    """|z| >= z_(1 - alpha/2): the two-sided fixed-horizon test rejects."""
    return np.asarray(np.abs(z_statistic(estimate, variance)) >= z_quantile(1.0 - alpha / 2.0))
