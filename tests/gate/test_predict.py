"""Predictions from models loaded the way serving pods load them (MLflow format, skops)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlrollout.api.validation import Validation
from mlrollout.gate.predict import _generic, conform, infer_task, predict
from mlrollout.gate.results import CouldNotRun
from mlrollout.runtime.loading import load_model

RNG = np.random.default_rng(5)
X = pd.DataFrame({"a": RNG.normal(size=300), "b": RNG.integers(0, 5, 300)})
Y = np.where(X.a + X.b / 5 > 0.4, "yes", "no")


def save(model: object, path: Path, x: pd.DataFrame) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model, str(path), signature=infer_signature(x), serialization_format="skops"
        )
    return path


def test_classifier_gives_labels_and_positive_class_scores(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit(X, Y)
    model = load_model(str(save(est, tmp_path / "m", X)))
    holdout = X.assign(churned=Y, extra="ignored")
    v = Validation.model_validate(
        {"dataset": {"uri": "x", "target": "churned"}, "metrics": [{"name": "f1", "min": 0}]}
    )
    assert infer_task(model, v) == "classification"
    p = predict(model, holdout, "churned", "classification")
    assert p.classes == ("no", "yes") and p.positive == "yes"
    np.testing.assert_array_equal(p.y_pred, est.predict(X))
    np.testing.assert_allclose(p.y_score, est.predict_proba(X)[:, 1])  # type: ignore[arg-type]
    with pytest.raises(CouldNotRun, match="no target column 'nope'"):
        predict(model, holdout, "nope", "classification")
    with pytest.raises(CouldNotRun, match=r"lacks the model's inputs \['b'\]"):
        predict(model, holdout.drop(columns="b"), "churned", "classification")


def test_regressor_and_task_inference(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    model = load_model(str(save(LinearRegression().fit(X, X.a * 2), tmp_path / "r", X)))
    v = Validation.model_validate(
        {"dataset": {"uri": "x", "target": "y"}, "metrics": [{"name": "mae", "max": 1}]}
    )
    assert infer_task(model, v) == "regression"
    ranking = Validation.model_validate(
        {"dataset": {"uri": "x", "target": "y"}, "metrics": [{"name": "ndcg", "min": 0.5}]}
    )
    assert infer_task(model, ranking) == "ranking"
    p = predict(model, X.assign(y=X.a * 2), "y", "regression")
    np.testing.assert_allclose(p.y_pred, X.a * 2, atol=1e-9)


def test_conform_casts_numbers_to_the_signature(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    model = load_model(str(save(LinearRegression().fit(X, X.a), tmp_path / "c", X.astype(float))))
    out = conform(X, model)
    assert str(out["b"].dtype) == "float64" and str(X["b"].dtype) == "int64"


def test_generic_output_scores_or_labels() -> None:
    y = np.array([0, 1, 1, 0])
    scores = _generic(np.array([0.2, 0.7, 0.6, 0.4]), y, "classification", None)
    assert scores.y_score is not None and list(scores.y_pred) == [0, 1, 1, 0]
    labels = _generic(np.array([0.0, 1.0, 1.0, 1.0]), y, "classification", None)
    assert labels.y_score is None and list(labels.y_pred) == [0, 1, 1, 1]
