"""Model performance once labels arrive: predictions joined to /feedback labels by request id.

The runtime logs one row per prediction (request_id, row) and one row per label (request_id,
label). A label for a one-row request is that row's truth; a multi-row request takes a JSON list
of labels, one per row. The last label posted for a request id wins. Only predictions at least
`labelDelay` old are judged (their labels have had time to arrive), over the drift window ending
there; fewer labelled rows than `minSamples` give no figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = frozenset({"accuracy", "f1", "roc_auc", "precision", "recall"})
REGRESSION_METRICS = frozenset({"mae", "rmse", "r2"})


@dataclass(frozen=True)
class PerformanceSettings:
    metric: str | None = None
    label_delay_seconds: float = 3600.0
    min_samples: int = 100


@dataclass(frozen=True)
class Performance:
    figures: dict[str, float]
    samples: int
    task: Task | None
    message: str | None = None
    labelled: pd.DataFrame | None = field(default=None, repr=False, compare=False)  # the joined rows


def _labels_per_row(labels: pd.DataFrame) -> pd.DataFrame:
    """(request_id, row, label) from the label stream; a JSON list spreads over rows 0..n-1."""
    if labels.empty or "label" not in labels:
        return pd.DataFrame(columns=["request_id", "row", "label"])
    chosen = labels[labels["label"].notna()]
    if "outcome" in chosen:
        chosen = chosen[chosen["outcome"].isna() | (chosen["outcome"] == "label")]
    if "timestamp" in chosen:
        chosen = chosen.sort_values("timestamp", kind="stable")
    chosen = chosen.drop_duplicates("request_id", keep="last")
    rows: list[tuple[str, int, Any]] = []
    for request_id, label in zip(chosen["request_id"], chosen["label"], strict=True):
        values = _as_list(label)
        rows += [(str(request_id), i, v) for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["request_id", "row", "label"])


def _as_list(label: Any) -> list[Any]:
    if isinstance(label, str) and label.startswith("["):
        try:
            parsed = json.loads(label)
        except ValueError:
            return [label]
        return parsed if isinstance(parsed, list) else [label]
    return [label]


def join(predictions: pd.DataFrame, labels: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Predictions that have a label: columns prediction and label (and `keep`, e.g. the inputs)."""
    truth = _labels_per_row(labels)
    if predictions.empty or truth.empty:
        return pd.DataFrame(columns=["prediction", "label", *keep])
    left = predictions.assign(
        request_id=predictions["request_id"].astype(str),
        row=predictions["row"].astype(int) if "row" in predictions else 0,
    )
    joined = left.merge(truth, on=["request_id", "row"], how="inner")
    return joined[["prediction", "label", *keep]]


def _numeric(series: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(series, errors="coerce")
    return None if converted.isna().any() else converted.astype(float)


def task_of(metric: str | None, joined: pd.DataFrame) -> Task:
    if metric in CLASSIFICATION_METRICS:
        return "classification"
    if metric in REGRESSION_METRICS:
        return "regression"
    labels = _numeric(joined["label"])
    if labels is None:
        return "classification"
    whole = bool(np.all(np.isclose(labels, np.round(labels))))
    return "classification" if whole and labels.nunique() <= 20 else "regression"


def figures(joined: pd.DataFrame, task: Task) -> dict[str, float]:
    return _regression(joined) if task == "regression" else _classification(joined)


def _regression(joined: pd.DataFrame) -> dict[str, float]:
    from sklearn import metrics as m

    y_true, y_pred = _numeric(joined["label"]), _numeric(joined["prediction"])
    if y_true is None or y_pred is None:
        raise ValueError("regression needs numeric labels and predictions")
    out = {
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(m.mean_squared_error(y_true, y_pred))),
    }
    if y_true.nunique() > 1:
        out["r2"] = float(m.r2_score(y_true, y_pred))
    return out


def _classification(joined: pd.DataFrame) -> dict[str, float]:
    from sklearn import metrics as m

    truth, predicted = _numeric(joined["label"]), _numeric(joined["prediction"])
    scores: pd.Series | None = None
    if truth is not None and predicted is not None:
        y_true, y_pred = truth.round().astype(int), predicted.round().astype(int)
        scores = predicted  # a probability, when the model returns one, ranks better than its class
    else:  # class names: compare as text
        y_true, y_pred = joined["label"].astype(str), joined["prediction"].astype(str)
    classes = sorted(set(y_true) | set(y_pred))
    if len(classes) == 2:
        f1 = m.f1_score(y_true, y_pred, average="binary", pos_label=classes[-1])
    else:
        f1 = m.f1_score(y_true, y_pred, average="macro")
    out = {"accuracy": float(m.accuracy_score(y_true, y_pred)), "f1": float(f1)}
    if scores is not None and y_true.nunique() == 2:
        out["roc_auc"] = float(m.roc_auc_score(y_true, scores))
    return out


def evaluate(
    predictions: pd.DataFrame, labels: pd.DataFrame, settings: PerformanceSettings, keep: Sequence[str] = ()
) -> Performance:
    joined = join(predictions, labels, keep)
    samples = len(joined)
    if samples < settings.min_samples:
        return Performance({}, samples, None, f"{samples} labelled rows < minSamples {settings.min_samples}")
    task = task_of(settings.metric, joined)
    try:
        return Performance(figures(joined, task), samples, task, labelled=joined)
    except ValueError as e:
        return Performance({}, samples, task, f"cannot score the labelled rows: {e}")
