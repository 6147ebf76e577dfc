"""Fairness on sensitive features with fairlearn: the difference between groups, and each group's figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn import metrics as fm

from mlrollout.api.gate import CheckVerdict
from mlrollout.api.validation import Fairness
from mlrollout.gate.results import CheckResult, error
from mlrollout.gate.tasks import Predictions, Task

DIFFERENCES = {
    "demographic_parity_difference": fm.demographic_parity_difference,
    "equalized_odds_difference": fm.equalized_odds_difference,
}


def _key(group: Any) -> str:
    return "/".join(map(str, group)) if isinstance(group, tuple) else str(group)


def per_group(
    y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], sensitive: pd.DataFrame
) -> dict[str, Any]:
    frame = fm.MetricFrame(
        metrics={
            "count": fm.count,
            "selection_rate": fm.selection_rate,
            "true_positive_rate": fm.true_positive_rate,
            "false_positive_rate": fm.false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    )
    table = frame.by_group
    return {_key(g): {k: float(v) for k, v in row.items()} for g, row in table.iterrows()}


def check_fairness(spec: Fairness, frame: pd.DataFrame, preds: Predictions, task: Task) -> CheckResult:
    name = f"fairness:{spec.metric}"
    missing = [c for c in spec.sensitive_features if c not in frame.columns]
    if missing:
        return error(
            name, f"the holdout has no sensitive feature column {missing}", details={"bad_input": True}
        )
    if task != "classification" or not preds.binary:
        return error(name, "fairness metrics need a binary classifier", details={"bad_input": True})
    y_true = (preds.y_true == preds.positive).astype(int)
    y_pred = (preds.y_pred == preds.positive).astype(int)
    sensitive = frame[spec.sensitive_features].reset_index(drop=True).astype(str)
    value = float(DIFFERENCES[spec.metric](y_true, y_pred, sensitive_features=sensitive))
    groups = per_group(y_true, y_pred, sensitive)
    figure = "true_positive_rate" if spec.metric == "equalized_odds_difference" else "selection_rate"
    summary = ", ".join(f"{g} {v[figure]:.3f}" for g, v in list(groups.items())[:8])
    details = {"groups": groups, "sensitive_features": spec.sensitive_features}
    verdict: CheckVerdict = "failed" if value > spec.max else "passed"
    return CheckResult(name, verdict, value, spec.max, f"{figure} by group: {summary}", details)
