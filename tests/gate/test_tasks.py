"""Task metrics against scikit-learn's own functions and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlrollout.gate.results import CouldNotRun
from mlrollout.gate.tasks import Predictions, average_precision, compute

RNG = np.random.default_rng(7)
Y = RNG.integers(0, 2, 200)
SCORE = np.clip(Y * 0.3 + RNG.random(200) * 0.7, 0, 1)
LABEL = (SCORE >= 0.5).astype(int)
BINARY = Predictions(Y, LABEL, SCORE, (0, 1))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("accuracy", skm.accuracy_score(Y, LABEL)),
        ("balanced_accuracy", skm.balanced_accuracy_score(Y, LABEL)),
        ("precision", skm.precision_score(Y, LABEL)),
        ("recall", skm.recall_score(Y, LABEL)),
        ("f1", skm.f1_score(Y, LABEL)),
        ("roc_auc", skm.roc_auc_score(Y, SCORE)),
        ("log_loss", skm.log_loss(Y, SCORE)),
    ],
)
def test_binary_classification_matches_sklearn(name: str, expected: float) -> None:
    assert compute("classification", name, BINARY) == pytest.approx(expected)


def test_hand_computed_precision_recall_with_string_labels() -> None:
    # truth:    yes yes no  no  yes ; predicted: yes no  yes no  yes -> TP 2, FP 1, FN 1
    y = np.array(["yes", "yes", "no", "no", "yes"])
    pred = np.array(["yes", "no", "yes", "no", "yes"])
    p = Predictions(y, pred, None, ("no", "yes"))
    assert compute("classification", "precision", p) == pytest.approx(2 / 3)
    assert compute("classification", "recall", p) == pytest.approx(2 / 3)
    assert compute("classification", "accuracy", p) == pytest.approx(3 / 5)


def test_hand_computed_roc_auc() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.2: pairs won 3 of 4
    p = Predictions(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.6, 0.2]), (0, 1))
    assert compute("classification", "roc_auc", p) == pytest.approx(0.75)


def test_multiclass_macro_and_ovr() -> None:
    y = RNG.integers(0, 3, 150)
    proba = RNG.dirichlet([1, 1, 1], 150)
    pred = proba.argmax(axis=1)
    p = Predictions(y, pred, proba, (0, 1, 2))
    assert compute("classification", "f1", p) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert compute("classification", "roc_auc", p) == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr")
    )


def test_regression_matches_sklearn() -> None:
    y = RNG.normal(size=100)
    pred = y + RNG.normal(scale=0.3, size=100)
    p = Predictions(y, pred)
    assert compute("regression", "mae", p) == pytest.approx(skm.mean_absolute_error(y, pred))
    assert compute("regression", "rmse", p) == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert compute("regression", "r2", p) == pytest.approx(skm.r2_score(y, pred))


def test_ranking_hand_computed() -> None:
    # query a: relevant items ranked 1 and 3 -> AP (1 + 2/3)/2, RR 1
    # query b: relevant item ranked 2        -> AP 1/2, RR 1/2
    # query c: nothing relevant              -> left out (no ideal order)
    groups = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 2)
    rel = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    score = np.array([0.9, 0.5, 0.1, 0.9, 0.5, 0.1, 0.3, 0.2])
    p = Predictions(rel, score, groups=groups)
    assert compute("ranking", "map", p) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert compute("ranking", "mrr", p) == pytest.approx((1 + 0.5) / 2)
    expected_ndcg = np.mean(
        [skm.ndcg_score([rel[:3]], [score[:3]], k=2), skm.ndcg_score([rel[3:6]], [score[3:6]], k=2)]
    )
    assert compute("ranking", "ndcg", p, k=2) == pytest.approx(expected_ndcg)


def test_average_precision_matches_sklearn_without_ties() -> None:
    rel = RNG.integers(0, 2, 50)
    rel[0] = 1
    score = RNG.permutation(50).astype(float)
    assert average_precision(rel, score) == pytest.approx(skm.average_precision_score(rel, score))


@pytest.mark.parametrize(
    ("task", "name", "p", "words"),
    [
        ("classification", "rmse", BINARY, "unknown metric 'rmse' for a classification task"),
        ("regression", "roc_auc", Predictions(Y, SCORE), "unknown metric"),
        ("classification", "roc_auc", Predictions(np.ones(5), np.ones(5), None, (0, 1)), "one class only"),
        ("classification", "log_loss", Predictions(Y, LABEL, None, (0, 1)), "needs probabilities"),
        ("ranking", "map", Predictions(Y, SCORE), "query column"),
    ],
)
def test_cannot_compute(task: str, name: str, p: Predictions, words: str) -> None:
    with pytest.raises(CouldNotRun, match=words):
        compute(task, name, p)  # type: ignore[arg-type]
