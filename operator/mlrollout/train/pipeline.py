"""The built-in trainer's scikit-learn pipelines and their search spaces, as data.

Numeric columns are scaled; categorical columns (strings, categories, booleans) one-hot encoded, a
missing value being a category of its own and an unseen category ignored at serving time. Only the
linear models get a median imputer for numbers: trees and boosting take missing values natively, and
the imputer's fitted dtype is a type skops does not load by default (serving must then trust
`numpy.dtype`; the registered version names such types in its tag mlrollout.skops_types). Every
estimator has a search space usable by TPE and random search, and a small grid for grid search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlrollout.api.loop import BuiltinTrainer, Estimator

Task = Literal["classification", "regression"]
ParamValue = int | float | str | bool | None
CLASSIFIERS_ONLY = {"logistic_regression"}
REGRESSORS_ONLY = {"linear_regression", "ridge"}
MAX_CLASSES_FROM_INTEGERS = 20
NEEDS_IMPUTATION = {"logistic_regression", "linear_regression", "ridge"}


class TrainingInputError(ValueError):
    """The data or the trainer's settings cannot give a model; retrying cannot help."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a range (int or float, optionally log-scaled) or a set of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[ParamValue, ...] = ()
    grid: tuple[ParamValue, ...] = ()


SPACES: Mapping[Estimator, tuple[Param, ...]] = {
    "logistic_regression": (
        Param("C", 1e-3, 1e2, log=True, grid=(0.01, 0.1, 1.0, 10.0)),
        Param("class_weight", choices=(None, "balanced"), grid=(None, "balanced")),
    ),
    "random_forest": (
        Param("n_estimators", 50, 300, integer=True, grid=(100, 200)),
        Param("max_depth", 2, 16, integer=True, grid=(4, 8, 16)),
        Param("min_samples_leaf", 1, 20, integer=True, grid=(1, 5)),
    ),
    "gradient_boosting": (
        Param("learning_rate", 0.01, 0.3, log=True, grid=(0.05, 0.1, 0.2)),
        Param("max_iter", 50, 300, integer=True, grid=(100, 200)),
        Param("max_depth", 2, 8, integer=True, grid=(3, 5)),
        Param("l2_regularization", 1e-6, 1.0, log=True, grid=(1e-6, 0.1)),
    ),
    "linear_regression": (Param("fit_intercept", choices=(True, False), grid=(True, False)),),
    "ridge": (Param("alpha", 1e-3, 1e3, log=True, grid=(0.01, 0.1, 1.0, 10.0, 100.0)),),
}


def grid(estimator: Estimator) -> dict[str, list[ParamValue]]:
    return {p.name: list(p.grid) for p in SPACES[estimator]}


def task_of(trainer: BuiltinTrainer, target: pd.Series) -> Task:
    if trainer.task is not None:
        task: Task = trainer.task
    elif trainer.estimator in CLASSIFIERS_ONLY:
        task = "classification"
    elif trainer.estimator in REGRESSORS_ONLY:
        task = "regression"
    else:
        task = "classification" if _looks_categorical(target) else "regression"
    if task == "classification" and trainer.estimator in REGRESSORS_ONLY:
        raise TrainingInputError(f"{trainer.estimator} is a regressor; the task is classification")
    if task == "regression" and trainer.estimator in CLASSIFIERS_ONLY:
        raise TrainingInputError(f"{trainer.estimator} is a classifier; the task is regression")
    return task


def _looks_categorical(target: pd.Series) -> bool:
    if target.dtype.kind in "OSUb" or isinstance(target.dtype, pd.CategoricalDtype):
        return True
    return target.dtype.kind in "iu" and target.nunique() <= MAX_CLASSES_FROM_INTEGERS


def split_columns(frame: pd.DataFrame, trainer: BuiltinTrainer) -> tuple[list[str], list[str]]:
    """(numeric, categorical) input columns; names the columns that are missing."""
    if trainer.target not in frame.columns:
        raise TrainingInputError(f"target column {trainer.target!r} is not in the dataset")
    if trainer.features is not None:
        missing = [c for c in trainer.features if c not in frame.columns]
        if missing:
            raise TrainingInputError(f"feature columns not in the dataset: {missing}")
        features = [c for c in trainer.features if c != trainer.target]
    else:
        skip = {trainer.target, *trainer.exclude}
        features = [c for c in frame.columns if c not in skip]
    if not features:
        raise TrainingInputError("no input columns left (check features / exclude)")
    numeric = [c for c in features if frame[c].dtype.kind in "iuf"]
    categorical = [c for c in features if c not in numeric]
    return numeric, categorical


def build(
    estimator: Estimator,
    task: Task,
    params: Mapping[str, Any],
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
) -> Any:
    """An unfitted Pipeline(preprocess, model)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
        if estimator in NEEDS_IMPUTATION:
            steps.insert(0, ("impute", SimpleImputer(strategy="median")))
        parts.append(("numeric", Pipeline(steps), list(numeric)))
    if categorical:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("categorical", onehot, list(categorical)))
    preprocess = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("preprocess", preprocess), ("model", _model(estimator, task, dict(params), seed))])


def _model(estimator: Estimator, task: Task, params: dict[str, Any], seed: int) -> Any:
    classify = task == "classification"
    if estimator == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000, random_state=seed, **params)
    if estimator == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestClassifier if classify else RandomForestRegressor
        return forest(random_state=seed, n_jobs=1, **params)
    if estimator == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        boosting = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return boosting(random_state=seed, **params)
    if estimator == "linear_regression":
        from sklearn.linear_model import LinearRegression

        return LinearRegression(**params)
    from sklearn.linear_model import Ridge

    return Ridge(random_state=seed, **params)


# -- scoring -------------------------------------------------------------------------------------------

MAXIMIZE = {"roc_auc", "accuracy", "f1", "r2"}
CLASSIFICATION_METRICS = {"roc_auc", "accuracy", "f1", "log_loss"}
REGRESSION_METRICS = {"r2", "rmse", "mae"}


def default_metric(task: Task) -> str:
    return "roc_auc" if task == "classification" else "r2"


def check_metric(metric: str, task: Task) -> None:
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in allowed:
        raise TrainingInputError(f"metric {metric} does not apply to {task}; use one of {sorted(allowed)}")


def score(metric: str, model: Any, x: pd.DataFrame, y: pd.Series) -> float:
    from sklearn import metrics as m

    if metric in ("roc_auc", "log_loss"):
        proba = model.predict_proba(x)
        classes = list(model.classes_)
        if metric == "log_loss":
            return float(m.log_loss(y, proba, labels=classes))
        if len(classes) == 2:
            return float(m.roc_auc_score(y, proba[:, 1]))
        return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    predicted = model.predict(x)
    if metric == "accuracy":
        return float(m.accuracy_score(y, predicted))
    if metric == "f1":
        binary = y.nunique() <= 2
        return float(
            m.f1_score(y, predicted, average="binary" if binary else "macro", pos_label=_positive(y))
        )
    if metric == "r2":
        return float(m.r2_score(y, predicted))
    if metric == "rmse":
        return float(np.sqrt(m.mean_squared_error(y, predicted)))
    return float(m.mean_absolute_error(y, predicted))


def _positive(y: pd.Series) -> Any:
    values = sorted(y.unique().tolist(), key=str)
    return 1 if 1 in values else values[-1]
