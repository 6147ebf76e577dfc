"""Feature importance stability: does the model still lean on the features it leaned on in training?

Permutation importance (scikit-learn's `permutation_importance`: the drop in score when one
feature's values are shuffled) on the labelled window, against the importance measured at training
time, as Spearman's rank correlation over the features both know. 1: same order; near 0 or below:
the model now depends on other features than it did (a relationship changed, even when each
column's distribution did not).

Where the training-time importance comes from: the built-in trainer measures it on its
validation split (rows with true labels, which the reference snapshot does not carry) and tags the
model version with it as JSON, `mlrollout.feature_importance` = {"feature": importance, ...}. A
custom trainer may set the same tag. Without it, or below minSamples labelled rows, stability is
not reported (None with the reason), never guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TAG_VALUE_LIMIT = 5000  # MLflow's limit on a model version tag's value
N_REPEATS = 5
MAX_ROWS = 5000  # permutation importance costs features x repeats predictions of the window
MIN_FEATURES = 3  # a rank correlation over fewer features says nothing
SEED = 0


class Predicts:
    """What permutation importance needs of a model: predict(frame) -> array."""

    def __init__(self, predict: Callable[[pd.DataFrame], Any]) -> None:
        self._predict = predict

    def fit(self, x: Any, y: Any) -> Predicts:  # never called; scikit-learn checks that it exists
        raise NotImplementedError

    def predict(self, x: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.asarray(self._predict(x))


@dataclass(frozen=True)
class Stability:
    value: float | None
    message: str | None = None


def scoring_of(task: str) -> Callable[[Any, pd.DataFrame, Any], float]:
    """accuracy (classification) or R^2 (regression) of model.predict: a callable, so any object
    with predict() will do (scikit-learn's named scorers want its estimator tags)."""
    from sklearn.metrics import accuracy_score, r2_score

    metric = r2_score if task == "regression" else accuracy_score

    def score(model: Any, x: pd.DataFrame, y: Any) -> float:
        return float(metric(y, model.predict(x)))

    return score


def permutation_importances(
    model: Any,
    x: pd.DataFrame,
    y: pd.Series | np.ndarray[Any, Any],
    task: str,
    n_repeats: int = N_REPEATS,
    seed: int = SEED,
    max_rows: int = MAX_ROWS,
) -> dict[str, float]:
    """Mean permutation importance per column of `x` (at most `max_rows` rows, a seeded sample)."""
    from sklearn.inspection import permutation_importance

    if len(x) > max_rows:
        chosen = np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False)
        x, y = x.iloc[np.sort(chosen)], np.asarray(y)[np.sort(chosen)]
    result = permutation_importance(
        model, x, np.asarray(y), scoring=scoring_of(task), n_repeats=n_repeats, random_state=seed
    )
    return {str(c): float(v) for c, v in zip(x.columns, result.importances_mean, strict=True)}


def rank_correlation(baseline: Mapping[str, float], current: Mapping[str, float]) -> Stability:
    """Spearman's rho over the features both sides have."""
    from scipy.stats import spearmanr

    common = sorted(set(baseline) & set(current))
    if len(common) < MIN_FEATURES:
        return Stability(None, f"importance over {len(common)} common features (< {MIN_FEATURES})")
    rho = spearmanr([baseline[c] for c in common], [current[c] for c in common]).statistic
    if not math.isfinite(float(rho)):  # one side constant (e.g. every importance 0): no ranking
        return Stability(None, "importance is the same for every feature: no ranking to compare")
    return Stability(float(rho))


def encode(importances: Mapping[str, float]) -> str | None:
    """The tag's value (4 significant digits), or None when it would not fit in a tag."""
    text = json.dumps({k: float(f"{v:.4g}") for k, v in importances.items()}, separators=(",", ":"))
    return text if len(text) <= TAG_VALUE_LIMIT else None


def decode(text: str | None) -> dict[str, float] | None:
    """The tag's importances, None when missing or not a JSON object of numbers."""
    if not text:
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    out: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        out[str(key)] = float(value)
    return out
