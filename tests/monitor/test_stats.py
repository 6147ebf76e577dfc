"""Drift statistics: exactness against scipy, calibration under no shift, power under a shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlrollout.monitor.stats.drift import (
    CHI2_TEST,
    KS_TEST,
    DriftSettings,
    category_counts,
    column_drift,
    dataset_drift,
    most_drifted,
)
from mlrollout.monitor.stats.tests import (
    chi2_homogeneity,
    ks_test,
    normalized_wasserstein,
    numeric_drift,
    psi,
)

ALPHA = 0.05
WINDOWS = 2000  # binomial sd of the alarm rate at 5 %: 0.5 %, so 3-7 % is a 4-sd band


@pytest.mark.parametrize(
    "n_ref,n_cur,shift", [(50, 50, 0.0), (200, 80, 0.3), (3000, 5000, 0.05), (20000, 15000, 0.0)]
)
def test_ks_equals_scipy(n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, size=n_cur)
    expected = stats.ks_2samp(ref, cur)
    statistic, p_value = ks_test(ref, cur)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    "n_ref,n_cur,shift,decimals",
    [
        (50, 50, 0.0, None),
        (300, 200, 0.2, 1),  # ties within and across samples
        (20000, 15000, 0.0, None),  # above scipy's exact limit: its asymptotic p-value
        (60000, 30000, 0.02, 1),
        (40000, 40000, 0.0, 0),  # few distinct values, long runs of ties
        (12000, 3, 1.0, None),
    ],
)
def test_numeric_drift_equals_scipy(n_ref: int, n_cur: int, shift: float, decimals: int | None) -> None:
    """The one-merge path gives scipy's ks_2samp exactly and its Wasserstein distance."""
    rng = np.random.default_rng(n_ref * 7 + n_cur)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, size=n_cur)
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    expected = stats.ks_2samp(ref, cur)
    statistic, p_value, effect = numeric_drift(ref, cur)
    assert statistic == expected.statistic
    assert p_value == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert effect == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)


def test_numeric_drift_constant_reference() -> None:
    assert numeric_drift([1.0, 1.0], [1.0, 1.0])[2] == 0.0
    assert numeric_drift([1.0, 1.0], [2.0, 2.0])[2] == float("inf")


@pytest.mark.parametrize(
    "ref,cur",
    [
        ([30, 40, 30], [25, 50, 25]),
        ([5, 0, 95], [7, 3, 90]),
        ([100, 200], [130, 170]),  # 1 dof: scipy needs correction=False to be the plain test
        ([10, 0, 20, 0], [12, 0, 18, 5]),  # categories empty in both are not degrees of freedom
    ],
)
def test_chi2_homogeneity_equals_scipy(ref: list[int], cur: list[int]) -> None:
    table = np.array([ref, cur])
    observed = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(observed, correction=False)
    statistic, p_value = chi2_homogeneity(ref, cur)
    assert float(statistic) == pytest.approx(expected.statistic, rel=1e-10)
    assert float(p_value) == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_single_category_is_no_evidence() -> None:
    statistic, p_value = chi2_homogeneity([10, 0], [20, 0])
    assert float(statistic) == 0.0 and float(p_value) == 1.0


def test_column_drift_categorical_matches_scipy_on_series() -> None:
    rng = np.random.default_rng(7)
    ref = pd.Series(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=400))
    cur = pd.Series(rng.choice(["a", "b", "c", "d"], p=[0.4, 0.3, 0.2, 0.1], size=300))
    result = column_drift("x", ref, cur, DriftSettings())
    table = pd.crosstab(np.r_[np.zeros(len(ref)), np.ones(len(cur))], np.r_[ref.to_numpy(), cur.to_numpy()])
    assert result.test == CHI2_TEST
    assert result.p_value == pytest.approx(
        stats.chi2_contingency(table.to_numpy(), correction=False).pvalue, rel=1e-9
    )


def test_false_alarm_rate_numeric_no_shift() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.lognormal(size=(WINDOWS, 200)), rng.lognormal(size=(WINDOWS, 200))
    p_values = np.array([ks_test(r, c)[1] for r, c in zip(ref, cur, strict=True)])
    rate = float(np.mean(p_values < ALPHA))
    assert 0.03 <= rate <= 0.07, rate


@pytest.mark.parametrize("n_ref,n_cur", [(500, 500), (2000, 300)])
def test_false_alarm_rate_categorical_no_shift(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref)
    proportions = [0.5, 0.25, 0.15, 0.07, 0.03]
    ref = rng.multinomial(n_ref, proportions, size=WINDOWS)
    cur = rng.multinomial(n_cur, proportions, size=WINDOWS)
    _, p_values = chi2_homogeneity(ref, cur)
    rate = float(np.mean(p_values < ALPHA))
    assert 0.03 <= rate <= 0.07, rate


def test_goodness_of_fit_would_over_alarm() -> None:
    """Why not Evidently's `chisquare`: reference proportions taken as exact over-alarm with equal windows."""
    rng = np.random.default_rng(3)
    proportions = [0.5, 0.25, 0.15, 0.07, 0.03]
    ref = rng.multinomial(500, proportions, size=WINDOWS).astype(float)
    cur = rng.multinomial(500, proportions, size=WINDOWS).astype(float)
    expected = ref / ref.sum(axis=1, keepdims=True) * 500
    gof_p = stats.chisquare(cur, expected, axis=1).pvalue
    assert float(np.mean(gof_p < ALPHA)) > 0.15


def test_shifted_windows_are_flagged() -> None:
    rng = np.random.default_rng(5)
    flagged_numeric = [
        column_drift(
            "x", pd.Series(rng.normal(size=500)), pd.Series(rng.normal(0.5, size=500)), DriftSettings()
        ).drifted
        for _ in range(200)
    ]
    assert np.mean(flagged_numeric) > 0.95
    ref = rng.multinomial(500, [0.5, 0.3, 0.2], size=200)
    cur = rng.multinomial(500, [0.3, 0.3, 0.4], size=200)
    _, p_values = chi2_homogeneity(ref, cur)
    assert np.mean((p_values < ALPHA) & (psi(ref, cur) >= 0.1)) > 0.95


def test_effect_size_floor_ignores_tiny_significant_shift() -> None:
    rng = np.random.default_rng(9)
    ref, cur = pd.Series(rng.normal(size=200_000)), pd.Series(rng.normal(0.03, size=200_000))
    result = column_drift("x", ref, cur, DriftSettings(min_effect_size=0.1))
    assert result.test == KS_TEST
    assert result.p_value < 1e-6 and result.effect_size < 0.1 and not result.drifted


def test_normalized_wasserstein_and_psi() -> None:
    assert normalized_wasserstein([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]) == 0.0
    assert normalized_wasserstein([1.0, 1.0], [2.0, 2.0]) == float("inf")
    assert normalized_wasserstein(
        np.arange(1000.0), np.arange(1000.0) + np.std(np.arange(1000.0))
    ) == pytest.approx(1.0)
    assert float(psi([50, 50], [50, 50])) == 0.0
    assert float(psi([90, 10], [50, 50])) > 0.25


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, size=n),
            "income": rng.lognormal(10, 1, size=n),
            "city": rng.choice(["a", "b", "c"], p=[0.6 - 0.3 * shift, 0.3, 0.1 + 0.3 * shift], size=n),
            "flag": rng.random(n) < 0.3,
            "prediction": rng.normal(shift, 1, size=n),
        }
    )


def test_dataset_drift_names_shifted_columns() -> None:
    rng = np.random.default_rng(1)
    result = dataset_drift(
        _frame(rng, 2000, 0.0),
        _frame(rng, 1000, 1.0),
        DriftSettings(drift_share=0.5),
        prediction_column="prediction",
    )
    assert result.verdict == "Drift"
    assert sorted(result.drifted_columns) == ["age", "city"]
    assert result.drift_share == 0.5
    assert result.prediction is not None and result.prediction.drifted
    assert [c.column for c in most_drifted(result.columns, 2)] in (["age", "city"], ["city", "age"])


def test_dataset_no_shift_is_no_drift() -> None:
    rng = np.random.default_rng(2)
    result = dataset_drift(
        _frame(rng, 2000, 0.0), _frame(rng, 1000, 0.0), DriftSettings(), prediction_column="prediction"
    )
    assert result.verdict == "NoDrift"
    assert result.prediction is not None and not result.prediction.drifted


@pytest.mark.parametrize("n_cur,n_ref", [(0, 1000), (99, 1000), (1000, 50)])
def test_tiny_windows_are_insufficient_never_drift(n_cur: int, n_ref: int) -> None:
    rng = np.random.default_rng(4)
    result = dataset_drift(_frame(rng, n_ref, 0.0), _frame(rng, n_cur, 1.0), DriftSettings(min_samples=100))
    assert result.verdict == "Insufficient"
    assert result.columns == [] and result.message and "too few rows" in result.message


def test_category_counts_by_text_for_categorical_and_mixed_values() -> None:
    ref = pd.Series(pd.Categorical(["a", "b", "b", None], categories=["a", "b", "z"]))
    cur = pd.Series(["b", "c", "b", "b"])
    ref_counts, cur_counts = category_counts(ref, cur)  # a b c z
    assert ref_counts.tolist() == [1.0, 2.0, 0.0, 0.0] and cur_counts.tolist() == [0.0, 3.0, 1.0, 0.0]
    mixed_ref, mixed_cur = category_counts(pd.Series([1, "1", True]), pd.Series(["True", 2]))
    assert mixed_ref.tolist() == [2.0, 0.0, 1.0] and mixed_cur.tolist() == [0.0, 1.0, 1.0]


def test_category_counts_align_union() -> None:
    ref, cur = category_counts(pd.Series(["a", "b", "b"]), pd.Series(["c", "b", None]))
    assert ref.tolist() == [1, 2, 0] and cur.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "kwargs",
    [{"p_value": 0}, {"p_value": 1}, {"min_effect_size": -1}, {"drift_share": 0}, {"min_samples": 0}],
)
def test_settings_reject_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DriftSettings(**kwargs)  # type: ignore[arg-type]
