"""Leakage: holdout rows seen in training, a single feature that gives the target away, time order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from mlrollout.api.gate import CheckVerdict
from mlrollout.gate.results import CheckResult, CouldNotRun, error
from mlrollout.gate.tasks import Task

# A categorical column with more distinct values than this share of rows is an identifier: it
# "determines" any target on a finite sample, so mutual information says nothing about leakage.
IDENTIFIER_SHARE = 0.5
NUMERIC_BINS = 32


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64, everything else as text: a CSV and a Parquet copy of a row hash the same."""
    out = {}
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[c] = s.astype("float64")
        else:
            out[c] = s.astype(str)
    return pd.DataFrame(out)


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.asarray(pd.util.hash_pandas_object(_normalised(frame[list(columns)]), index=False))


def overlap(train: pd.DataFrame, holdout: pd.DataFrame, max_share: float) -> CheckResult:
    """Share of holdout rows (all shared columns, target included) that appear in the training data."""
    name = "leakage:overlap"
    columns = sorted(set(train.columns) & set(holdout.columns), key=list(holdout.columns).index)
    if not columns:
        return error(name, "training data and holdout share no column")
    seen = np.isin(row_hashes(holdout, columns), row_hashes(train, columns))
    share = float(seen.mean()) if len(seen) else 0.0
    details = {"rows": len(holdout), "shared_rows": int(seen.sum()), "columns": columns}
    message = f"{int(seen.sum())} of {len(holdout)} holdout rows appear in the training data"
    verdict: CheckVerdict = "failed" if share > max_share else "passed"
    return CheckResult(name, verdict, share, max_share, message, details)


def _entropy(y: pd.Series[Any]) -> float:
    p = y.value_counts(normalize=True).to_numpy()
    return float(-(p * np.log(p)).sum())


def _binned(x: pd.Series[Any]) -> pd.Series[Any]:
    return pd.qcut(x.rank(method="first"), q=min(NUMERIC_BINS, x.nunique()), labels=False, duplicates="drop")


def association(x: pd.Series[Any], y: pd.Series[Any], task: Task, positive: Any = None) -> tuple[float, str]:
    """How well one feature alone predicts the target, in [0, 1], and the statistic used."""
    keep = x.notna() & y.notna()
    x, y = x[keep], y[keep]
    if len(x) < 2 or x.nunique() < 2:
        return 0.0, "constant"
    numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
    if task == "classification":
        if y.nunique() < 2:
            return 0.0, "constant target"
        if numeric and y.nunique() == 2:
            auc = float(skm.roc_auc_score(y == (positive if positive is not None else y.max()), x))
            return max(auc, 1.0 - auc), "roc_auc"
        if not numeric and x.nunique() > IDENTIFIER_SHARE * len(x):
            return 0.0, "identifier"
        feature = _binned(x) if numeric else x.astype(str)
        return float(
            skm.mutual_info_score(feature, y.astype(str)) / _entropy(y.astype(str))
        ), "mutual_information"
    # regression and ranking: rank correlation for numbers, correlation ratio for categories
    if numeric:
        rho = stats.spearmanr(x, y).statistic
        return (0.0 if rho != rho else abs(float(rho))), "spearman"
    if x.nunique() > IDENTIFIER_SHARE * len(x):
        return 0.0, "identifier"
    yf = y.astype(float)
    total = float(((yf - yf.mean()) ** 2).sum())
    if total == 0:
        return 0.0, "constant target"
    between = float(yf.groupby(x.astype(str)).agg(lambda g: len(g) * (g.mean() - yf.mean()) ** 2).sum())
    return float(np.sqrt(between / total)), "correlation_ratio"


def target_association(
    holdout: pd.DataFrame,
    features: Sequence[str],
    target: str,
    task: Task,
    limit: float,
    positive: Any = None,
) -> CheckResult:
    name = "leakage:target-association"
    if target not in holdout.columns:
        return error(name, f"the holdout has no target column {target!r}")
    scores: dict[str, dict[str, Any]] = {}
    for f in features:
        if f == target or f not in holdout.columns:
            continue
        value, statistic = association(holdout[f], holdout[target], task, positive)
        scores[f] = {"value": value, "statistic": statistic}
    if not scores:
        return CheckResult(name, "skipped", message="no feature to check")
    worst = max(scores, key=lambda f: scores[f]["value"])
    value = float(scores[worst]["value"])
    leaky = sorted(f for f, s in scores.items() if s["value"] >= limit)
    if leaky:
        message = f"features predicting the target almost perfectly on their own: {leaky[:10]}"
        return CheckResult(name, "failed", value, limit, message, {"features": scores})
    message = f"strongest single feature: {worst} ({scores[worst]['statistic']} {value:.3f})"
    return CheckResult(name, "passed", value, limit, message, {"features": scores})


def _times(s: pd.Series[Any]) -> pd.Series[Any]:
    if pd.api.types.is_numeric_dtype(s):
        return s
    try:
        return pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as exc:
        raise CouldNotRun(f"time column values are not times: {exc}", True) from exc


def time_order(train: pd.DataFrame, holdout: pd.DataFrame, column: str) -> CheckResult:
    """Every holdout row must be no earlier than the latest training row: a holdout from the past leaks."""
    name = "leakage:time-order"
    for label, frame in (("training data", train), ("holdout", holdout)):
        if column not in frame.columns:
            return error(name, f"the {label} has no time column {column!r}", details={"bad_input": True})
    try:
        t_train, t_hold = _times(train[column]), _times(holdout[column])
    except CouldNotRun as exc:
        return error(name, exc.reason, details={"bad_input": True})
    latest = t_train.max()
    earlier = (t_hold < latest).to_numpy()
    share = float(earlier.mean()) if len(earlier) else 0.0
    details = {"training_latest": str(latest), "holdout_earliest": str(t_hold.min())}
    if share > 0:
        message = f"{int(earlier.sum())} holdout rows are earlier than the latest training row ({latest})"
        return CheckResult(name, "failed", share, 0.0, message, details)
    return CheckResult(name, "passed", 0.0, 0.0, None, details)
