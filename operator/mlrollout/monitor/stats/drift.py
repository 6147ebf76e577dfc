"""Per-column drift and the dataset verdict.

A column drifts only when its test is significant (p < p_value) AND the shift is large enough
(effect size >= min_effect_size): on large windows every tiny shift is significant. The share of
drifted columns decides the verdict. Too few rows give "Insufficient", never "Drift".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mlrollout.monitor.stats.tests import chi2_homogeneity, numeric_drift, psi

ColumnKind = Literal["numeric", "categorical"]
Verdict = Literal["NoDrift", "Drift", "Insufficient"]

KS_TEST = "ks"
CHI2_TEST = "chi2_homogeneity"


@dataclass(frozen=True)
class DriftSettings:
    p_value: float = 0.05
    min_effect_size: float = 0.1
    drift_share: float = 0.5
    min_samples: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.p_value < 1:
            raise ValueError(f"p_value must be in (0, 1), got {self.p_value}")
        if self.min_effect_size < 0:
            raise ValueError(f"min_effect_size must be >= 0, got {self.min_effect_size}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")


@dataclass(frozen=True)
class ColumnResult:
    column: str
    test: str
    statistic: float
    p_value: float
    effect_size: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    verdict: Verdict
    samples: int
    reference_samples: int
    drift_share: float | None = None
    columns: list[ColumnResult] = field(default_factory=list)
    prediction: ColumnResult | None = None
    message: str | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def column_kind(series: pd.Series) -> ColumnKind:
    """Numbers (not booleans) are numeric; everything else is a category."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "numeric"


def category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each category seen in either sample, aligned (the 2 x k contingency table)."""
    ref, cur = _counts_by_text(reference), _counts_by_text(current)
    categories = ref.index.union(cur.index)
    return (
        ref.reindex(categories, fill_value=0).to_numpy(dtype=float),
        cur.reindex(categories, fill_value=0).to_numpy(dtype=float),
    )


def _counts_by_text(series: pd.Series) -> pd.Series:
    """Counts per category, keyed by the category's text (True and "True" are one category).

    Counted on the raw values (integer codes for a pandas Categorical) and only then turned into
    text: converting a million values to Python strings first cost more than the test itself.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        counts = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
        by_value = pd.Series(counts, index=series.cat.categories.astype(str))
    else:
        by_value = series.value_counts(dropna=True)
        if series.dtype == object and not all(isinstance(v, str) for v in by_value.index):
            # mixed values: 1 and True hash alike, so count their texts instead
            by_value = series.dropna().astype(str).value_counts()
        by_value.index = by_value.index.astype(str)
    if by_value.index.has_duplicates:  # 1 and "1", or 1 and 1.0: one category as text
        by_value = by_value.groupby(level=0).sum()
    return by_value


def is_drifted(p_value: float, effect_size: float, settings: DriftSettings) -> bool:
    return p_value < settings.p_value and effect_size >= settings.min_effect_size


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    settings: DriftSettings,
    kind: ColumnKind | None = None,
) -> ColumnResult:
    kind = kind or column_kind(reference)
    if kind == "numeric":
        ref = reference.dropna().to_numpy(dtype=float)
        cur = current.dropna().to_numpy(dtype=float)
        if len(ref) == 0 or len(cur) == 0:
            return ColumnResult(name, KS_TEST, 0.0, 1.0, 0.0, False)
        statistic, p_value, effect = numeric_drift(ref, cur)
        test = KS_TEST
    else:
        ref_counts, cur_counts = category_counts(reference, current)
        stat_array, p_array = chi2_homogeneity(ref_counts, cur_counts)
        statistic, p_value = float(stat_array), float(p_array)
        effect = float(psi(ref_counts, cur_counts))
        test = CHI2_TEST
    return ColumnResult(name, test, statistic, p_value, effect, is_drifted(p_value, effect, settings))


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: DriftSettings,
    columns: Sequence[str] | None = None,
    prediction_column: str | None = None,
) -> DriftResult:
    """The verdict over `columns` (default: the reference's columns except the prediction)."""
    feature_columns = [
        c for c in (columns if columns is not None else reference.columns) if c != prediction_column
    ]
    samples, reference_samples = len(current), len(reference)
    if samples < settings.min_samples or reference_samples < settings.min_samples:
        return DriftResult(
            verdict="Insufficient",
            samples=samples,
            reference_samples=reference_samples,
            message=(
                f"too few rows: {samples} in the window and {reference_samples} in the reference,"
                f" need at least {settings.min_samples} in each"
            ),
        )
    results = [column_drift(c, reference[c], current[c], settings) for c in feature_columns]
    prediction = None
    if prediction_column is not None and prediction_column in reference and prediction_column in current:
        prediction = column_drift(
            prediction_column, reference[prediction_column], current[prediction_column], settings
        )
    share = sum(r.drifted for r in results) / len(results) if results else 0.0
    drifted = bool(results) and share >= settings.drift_share
    return DriftResult(
        verdict="Drift" if drifted else "NoDrift",
        samples=samples,
        reference_samples=reference_samples,
        drift_share=share,
        columns=results,
        prediction=prediction,
    )


def most_drifted(results: Sequence[ColumnResult], limit: int) -> list[ColumnResult]:
    """Drifted columns first, then by effect size, then by smallest p-value."""

    def key(r: ColumnResult) -> tuple[bool, float, float]:
        effect = r.effect_size if math.isfinite(r.effect_size) else float("inf")
        return (not r.drifted, -effect, r.p_value)

    return sorted(results, key=key)[:limit]
