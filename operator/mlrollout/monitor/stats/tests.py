"""Two-sample tests and effect sizes, vectorized over leading axes where the simulation needs it.

Categorical columns use the chi-squared test of homogeneity on the 2 x k contingency table of
reference and current counts (both samples are random), not a goodness-of-fit test against the
reference proportions taken as exact: that one over-alarms (31 % at alpha 0.05 in our simulation).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]

# floor for proportions in PSI so an empty bin gives a large, finite term
_PSI_EPSILON = 1e-4


def ks_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy's `ks_2samp`, method auto)."""
    result = stats.ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    return float(result.statistic), float(result.pvalue)


# scipy's ks_2samp uses its exact distribution up to this sample size (method "auto"), else asymptotic
_KS_EXACT_MAX_N = 10_000


def numeric_drift(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float, float]:
    """KS statistic, KS p-value and normalized Wasserstein distance from ONE merge of the samples.

    The same numbers as `ks_test` and `normalized_wasserstein` (scipy's `ks_2samp` and
    `wasserstein_distance`), about 10x faster on a million rows: scipy sorts the samples twice and
    locates every value with binary searches four times; here one stable argsort of the two sorted
    samples merges them, and cumulative counts of each side give both empirical CDFs. The CDFs are
    read only at the last value of each run of ties, where they equal scipy's `searchsorted(...,
    side="right")`; elsewhere the gap to the next value is 0, so Wasserstein's sum is unchanged.
    """
    ref = np.sort(np.asarray(reference, dtype=float))
    cur = np.sort(np.asarray(current, dtype=float))
    n_ref, n_cur = ref.size, cur.size
    if max(n_ref, n_cur) <= _KS_EXACT_MAX_N:  # small: scipy's exact p-value, cheap at this size
        statistic, p_value = ks_test(ref, cur)
    else:
        statistic, p_value = -1.0, -1.0
    joined = np.concatenate([ref, cur])
    order = np.argsort(joined, kind="stable")
    merged = joined[order]
    from_ref = np.cumsum(order < n_ref)
    ref_cdf = from_ref / n_ref
    cur_cdf = (np.arange(1, merged.size + 1) - from_ref) / n_cur
    gaps = np.diff(merged)
    differences = ref_cdf - cur_cdf
    distance = float(np.sum(np.multiply(np.abs(differences[:-1]), gaps)))
    if statistic < 0:
        run_ends = np.empty(merged.size, dtype=bool)
        run_ends[:-1] = gaps != 0
        run_ends[-1] = True
        at_ends = differences[run_ends]
        below, above = float(np.clip(-at_ends.min(), 0, 1)), float(at_ends.max())
        statistic = below if below > above else above
        m, n = max(n_ref, n_cur), min(n_ref, n_cur)
        p_value = float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
    scale = float(np.std(ref))
    effect = distance / scale if scale > 0 else 0.0 if distance == 0 else float("inf")
    return statistic, p_value, effect


def chi2_homogeneity(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Chi-squared test of homogeneity on 2 x k tables; the last axis holds the k categories.

    Equals scipy's `chi2_contingency(table, correction=False)`. Categories empty in both samples
    are dropped from the degrees of freedom; a table with fewer than two observed categories has
    statistic 0 and p-value 1 (nothing to compare).
    """
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    column_totals = ref + cur
    n_ref = ref.sum(axis=-1, keepdims=True)
    n_cur = cur.sum(axis=-1, keepdims=True)
    total = n_ref + n_cur
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_ref = column_totals * n_ref / total
        expected_cur = column_totals * n_cur / total
        terms = np.where(expected_ref > 0, (ref - expected_ref) ** 2 / expected_ref, 0.0) + np.where(
            expected_cur > 0, (cur - expected_cur) ** 2 / expected_cur, 0.0
        )
    statistic = terms.sum(axis=-1)
    dof = (column_totals > 0).sum(axis=-1) - 1
    p_value = np.where(dof > 0, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    statistic = np.where(dof > 0, statistic, 0.0)
    return statistic, p_value


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> FloatArray:
    """Population stability index between two count vectors (last axis = bins)."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    p = np.maximum(ref / np.maximum(ref.sum(axis=-1, keepdims=True), 1.0), _PSI_EPSILON)
    q = np.maximum(cur / np.maximum(cur.sum(axis=-1, keepdims=True), 1.0), _PSI_EPSILON)
    result: FloatArray = ((q - p) * np.log(q / p)).sum(axis=-1)
    return result


def normalized_wasserstein(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation.

    A constant reference has no scale: any movement then counts as infinitely large.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    distance = float(stats.wasserstein_distance(ref, cur))
    scale = float(np.std(ref))
    if scale > 0:
        return distance / scale
    return 0.0 if distance == 0 else float("inf")
