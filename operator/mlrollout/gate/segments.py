"""Task-metric checks, overall and per segment (a pandas query over the holdout's columns)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlrollout.api.validation import GateMetric
from mlrollout.gate.results import CheckResult, CouldNotRun, bounded, error
from mlrollout.gate.tasks import Predictions, Task, compute, metric_fn

# Above this share of one class, accuracy says little (always answering that class scores as much).
IMBALANCE_SHARE = 0.8


def check_name(metric: GateMetric) -> str:
    cut = f"@{metric.k}" if metric.k else ""
    return f"metric:{metric.name}{cut}" + (f"[{metric.segment}]" if metric.segment else "")


def segment_mask(frame: pd.DataFrame, segment: str) -> np.ndarray[Any, Any]:
    """Rows selected by a pandas query; CouldNotRun (bad input) when it does not parse or selects nothing."""
    try:
        selected = frame.query(segment)
    except Exception as exc:  # SyntaxError, UndefinedVariableError, TypeError...: all say "fix the query"
        raise CouldNotRun(
            f"segment {segment!r} cannot be evaluated: {type(exc).__name__}: {exc}", True
        ) from exc
    if len(selected) == 0:
        raise CouldNotRun(f"segment {segment!r} selects no rows of the holdout ({len(frame)} rows)", True)
    return np.asarray(frame.index.isin(selected.index))


def check_metric(metric: GateMetric, frame: pd.DataFrame, preds: Predictions, task: Task) -> CheckResult:
    name = check_name(metric)
    try:
        metric_fn(task, metric.name)
        p = preds
        rows = len(frame)
        if metric.segment:
            mask = segment_mask(frame, metric.segment)
            p, rows = preds.subset(mask), int(mask.sum())
        value = compute(task, metric.name, p, metric.k)
    except CouldNotRun as exc:
        return error(name, exc.reason, details={"bad_input": exc.bad_input})
    return bounded(name, value, metric.min, metric.max, details={"rows": rows, "segment": metric.segment})


def imbalance_warning(preds: Predictions, metrics: Sequence[GateMetric]) -> CheckResult | None:
    """Accuracy under class imbalance: a warning with the score of always answering the majority class."""
    accuracy = [m for m in metrics if m.name == "accuracy"]
    if not accuracy or len(preds.y_true) == 0:
        return None
    values, counts = np.unique(preds.y_true, return_counts=True)
    share = float(counts.max() / counts.sum())
    floor = max((m.min for m in accuracy if m.min is not None), default=1.0)
    if share < IMBALANCE_SHARE and share < floor:
        return None
    majority = values[int(counts.argmax())]
    majority = majority.item() if isinstance(majority, np.generic) else majority
    return CheckResult(
        "warning:accuracy-imbalance",
        "warning",
        share,
        IMBALANCE_SHARE,
        f"accuracy is misleading here: always answering {majority!r} scores {share:.3f}; "
        "prefer balanced_accuracy, f1 or roc_auc",
    )


def check_metrics(
    metrics: Sequence[GateMetric], frame: pd.DataFrame, preds: Predictions, task: Task
) -> list[CheckResult]:
    frame = frame.reset_index(drop=True)
    results = [check_metric(m, frame, preds, task) for m in metrics]
    if task == "classification":
        warning = imbalance_warning(preds, metrics)
        if warning is not None:
            results.append(warning)
    return results
