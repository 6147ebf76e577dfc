"""Importance stability: permutation importance (scikit-learn's) ranked against training time (Spearman)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlrollout.monitor.importance import (
    MIN_FEATURES,
    Predicts,
    decode,
    encode,
    permutation_importances,
    rank_correlation,
)
from mlrollout.monitor.job import MonitorConfig, importance_of
from mlrollout.monitor.performance import Performance
from mlrollout.monitor.stats.drift import DriftSettings

FEATURES = ["f0", "f1", "f2", "f3", "f4", "f5"]
OLD_WEIGHTS = np.array([3.0, 2.0, 1.2, 0.7, 0.3, 0.1])


def regression_data(rng: np.random.Generator, n: int, weights: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    return x, pd.Series(x.to_numpy() @ weights + rng.normal(0, 0.3, size=n))


def test_permutation_importances_are_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(800, 4)), columns=list("abcd"))
    y = (x["a"] + 0.5 * x["b"] + rng.normal(0, 0.5, size=800) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    expected = permutation_importance(model, x, y, scoring="accuracy", n_repeats=5, random_state=0)
    ours = permutation_importances(model, x, y, "classification")
    assert list(ours) == list("abcd")
    assert list(ours.values()) == pytest.approx(expected.importances_mean.tolist(), abs=1e-12)
    # any object with predict() (a pyfunc model through the runtime) gives the same
    assert permutation_importances(Predicts(model.predict), x, y, "classification") == ours


def test_rank_correlation_is_spearmans_rho() -> None:
    baseline = {"a": 0.5, "b": 0.2, "c": 0.1, "d": 0.05}
    current = {"a": 0.1, "b": 0.3, "c": 0.05, "d": 0.2, "new": 1.0}  # only common features count
    expected = spearmanr([0.5, 0.2, 0.1, 0.05], [0.1, 0.3, 0.05, 0.2]).statistic
    assert rank_correlation(baseline, current).value == pytest.approx(expected)


def test_unchanged_relationship_is_stable_a_changed_one_is_not() -> None:
    rng = np.random.default_rng(7)
    x_train, y_train = regression_data(rng, 3000, OLD_WEIGHTS)
    model = LinearRegression().fit(x_train, y_train)
    x_valid, y_valid = regression_data(rng, 2000, OLD_WEIGHTS)
    baseline = permutation_importances(model, x_valid, y_valid, "regression")
    assert sorted(baseline, key=baseline.__getitem__, reverse=True) == FEATURES

    x_live, y_live = regression_data(rng, 2000, OLD_WEIGHTS)
    same = rank_correlation(baseline, permutation_importances(model, x_live, y_live, "regression"))
    assert same.value is not None and same.value > 0.9

    # the world changed: the target now leans on the features the model thought minor
    x_new, y_new = regression_data(rng, 2000, OLD_WEIGHTS[::-1])
    changed = rank_correlation(baseline, permutation_importances(model, x_new, y_new, "regression"))
    assert changed.value is not None and changed.value < 0.3
    assert changed.value == pytest.approx(
        spearmanr(
            [baseline[f] for f in FEATURES],
            [permutation_importances(model, x_new, y_new, "regression")[f] for f in FEATURES],
        ).statistic
    )


def test_no_ranking_is_not_reported() -> None:
    assert rank_correlation({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0}).value is None  # < MIN_FEATURES
    assert MIN_FEATURES == 3
    constant = rank_correlation({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert constant.value is None and constant.message and "same for every feature" in constant.message


def test_tag_round_trip_and_bad_tags() -> None:
    text = encode({"a": 0.123456789, "b": -0.001})
    assert text == '{"a":0.1235,"b":-0.001}' and decode(text) == {"a": 0.1235, "b": -0.001}
    assert encode({f"feature_{i}": 0.123456 for i in range(400)}) is None  # too long for an MLflow tag
    for bad in (None, "", "not json", "[1, 2]", '{"a": "x"}', '{"a": true}', '{"a": NaN}'):
        assert decode(bad) is None


def test_below_min_samples_is_not_reported() -> None:
    config = MonitorConfig(
        namespace="ns",
        name="churn",
        reference_uri="",
        inference_log_uri="/nowhere",
        settings=DriftSettings(),
        version="3",
        model_name="churn",
        tracking_uri="http://127.0.0.1:9",  # never called: no labelled rows to rank
    )
    few = Performance({}, 30, None, "30 labelled rows < minSamples 100")
    stability = importance_of(config, few)
    assert stability.value is None and stability.message and "minSamples" in stability.message
