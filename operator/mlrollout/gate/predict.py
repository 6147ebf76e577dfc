"""A loaded model's predictions on the holdout, shaped for the checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlrollout.api.validation import Validation
from mlrollout.gate.results import CouldNotRun
from mlrollout.gate.tasks import METRICS, Predictions, Task
from mlrollout.runtime.loading import LoadedModel
from mlrollout.runtime.schema import Batch


def infer_task(model: LoadedModel, validation: Validation) -> Task:
    """Explicit task first; then ranking metrics, a classifier's classes, else regression."""
    if validation.task is not None:
        return validation.task
    names = {m.name for m in validation.metrics}
    if validation.champion_challenger is not None:
        names.add(validation.champion_challenger.metric)
    if names and names <= set(METRICS["ranking"]):
        return "ranking"
    if model.task == "classification" or names & (
        set(METRICS["classification"]) - set(METRICS["regression"])
    ):
        return "classification"
    return "regression"


def input_columns(model: LoadedModel, frame: pd.DataFrame, exclude: set[str]) -> list[str]:
    """The model's inputs: its signature, else what it was fitted on, else every other holdout column."""
    if model.schema.known:
        names = list(model.schema.names)
    else:
        fitted = getattr(getattr(model.predictor, "model", None), "feature_names_in_", None)
        names = (
            [str(n) for n in fitted] if fitted is not None else [c for c in frame.columns if c not in exclude]
        )
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise CouldNotRun(f"the holdout lacks the model's inputs {missing[:20]}", True)
    return names


def predict(
    model: LoadedModel, frame: pd.DataFrame, target: str, task: Task, group: str | None = None
) -> Predictions:
    if target not in frame.columns:
        raise CouldNotRun(
            f"the holdout has no target column {target!r} (columns: {list(frame.columns)[:30]})", True
        )
    if group is not None and group not in frame.columns:
        raise CouldNotRun(f"the holdout has no query column {group!r}", True)
    x = frame[input_columns(model, frame, {target, *([group] if group else [])})]
    y_true = frame[target].to_numpy()
    groups = frame[group].to_numpy() if group else None
    try:
        if model.flavor == "sklearn":
            return _sklearn(model.predictor.model, x, y_true, task, groups)  # type: ignore[attr-defined]
        out = np.asarray(model.predictor.predict(Batch(n=len(x), frame=conform(x, model))))
    except CouldNotRun:
        raise
    except Exception as exc:  # the model itself failed on the holdout: it could not be evaluated
        raise CouldNotRun(
            f"the model failed to predict on the holdout: {type(exc).__name__}: {exc}"[:500]
        ) from exc
    return _generic(out, y_true, task, groups)


_NUMPY_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


def conform(x: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """Numbers in the signature's types (Parquet's int64 for a double input, say): MLflow's schema
    enforcement refuses any conversion that might lose precision, where JSON callers never notice."""
    if not model.schema.known:
        return x
    out = x.copy()
    for col in model.schema.columns:
        target = _NUMPY_TYPES.get(col.type)
        s = out[col.name]
        if target is None or not pd.api.types.is_numeric_dtype(s) or str(s.dtype) == target:
            continue
        if target.startswith("int") and (s.isna().any() or not np.all(np.mod(s.to_numpy(), 1) == 0)):
            continue  # not whole numbers: let the model's own check say so
        out[col.name] = s.astype(target)
    return out


def _sklearn(est: Any, x: pd.DataFrame, y_true: np.ndarray[Any, Any], task: Task, groups: Any) -> Predictions:
    if task != "classification":
        return Predictions(y_true, np.asarray(est.predict(x), dtype=float), groups=groups)
    classes = tuple(c.item() if isinstance(c, np.generic) else c for c in getattr(est, "classes_", ()))
    y_pred = np.asarray(est.predict(x))
    score = None
    if hasattr(est, "predict_proba"):
        proba = np.asarray(est.predict_proba(x), dtype=float)
        score = proba[:, -1] if proba.shape[1] == 2 else proba
    return Predictions(y_true, y_pred, score, classes or tuple(np.unique(y_true).tolist()), groups)


def _generic(out: np.ndarray[Any, Any], y_true: np.ndarray[Any, Any], task: Task, groups: Any) -> Predictions:
    """A pyfunc answers with one column: labels, or the positive class's probability."""
    if task != "classification":
        return Predictions(y_true, out.astype(float), groups=groups)
    classes = tuple(np.unique(y_true).tolist())
    is_score = out.dtype.kind == "f" and len(classes) == 2 and bool(((out >= 0) & (out <= 1)).all())
    if is_score and not np.all(out == np.round(out)):
        y_pred = np.where(out >= 0.5, classes[-1], classes[0])
        return Predictions(y_true, y_pred, out, classes, groups)
    return Predictions(y_true, out, None, classes, groups)
