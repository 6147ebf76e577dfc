"""Task metrics: classification, regression, ranking, computed with scikit-learn where it has them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

from mlrollout.gate.results import CouldNotRun

Task = Literal["classification", "regression", "ranking"]
Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Predictions:
    """A model's answers on a holdout, aligned row by row with the truth."""

    y_true: Array
    y_pred: Array  # labels (classification), values (regression), scores (ranking)
    y_score: Array | None = None  # P(positive) for binary, (n, classes) probabilities for multiclass
    classes: tuple[Any, ...] = ()
    groups: Array | None = None  # query ids (ranking)

    @property
    def positive(self) -> Any:
        """The positive class of a binary task: the greater label, scikit-learn's convention."""
        return self.classes[-1] if self.classes else 1

    @property
    def binary(self) -> bool:
        return len(self.classes) <= 2

    def subset(self, mask: Array) -> Predictions:
        return replace(
            self,
            y_true=self.y_true[mask],
            y_pred=self.y_pred[mask],
            y_score=None if self.y_score is None else self.y_score[mask],
            groups=None if self.groups is None else self.groups[mask],
        )


# -- classification ------------------------------------------------------------------------------------


def _averaged(fn: Callable[..., float]) -> Callable[[Predictions, int | None], float]:
    def compute(p: Predictions, k: int | None) -> float:
        if p.binary:
            return float(fn(p.y_true, p.y_pred, pos_label=p.positive, zero_division=0))
        return float(fn(p.y_true, p.y_pred, labels=list(p.classes), average="macro", zero_division=0))

    return compute


def _two_classes(p: Predictions, metric: str) -> None:
    if len(np.unique(p.y_true)) < 2:
        raise CouldNotRun(f"{metric} is undefined: the rows hold one class only ({p.y_true[0]!r})")


def roc_auc(p: Predictions, k: int | None = None) -> float:
    _two_classes(p, "roc_auc")
    if p.binary:
        score = p.y_score if p.y_score is not None else (p.y_pred == p.positive).astype(float)
        return float(skm.roc_auc_score(p.y_true == p.positive, score))
    if p.y_score is None:
        raise CouldNotRun("roc_auc of a multiclass model needs class probabilities (predict_proba)", True)
    return float(skm.roc_auc_score(p.y_true, p.y_score, multi_class="ovr", labels=list(p.classes)))


def log_loss(p: Predictions, k: int | None = None) -> float:
    if p.y_score is None:
        raise CouldNotRun("log_loss needs probabilities; this model answers with labels only", True)
    if p.binary:
        return float(skm.log_loss(p.y_true == p.positive, p.y_score, labels=[False, True]))
    return float(skm.log_loss(p.y_true, p.y_score, labels=list(p.classes)))


# -- ranking -------------------------------------------------------------------------------------------


def _queries(p: Predictions) -> list[tuple[Array, Array]]:
    """(relevance, score) per query that has at least one relevant item: others have no ideal order."""
    if p.groups is None:
        raise CouldNotRun("ranking metrics need the query column (validation.dataset.group)", True)
    out = []
    for g in np.unique(p.groups):
        idx = p.groups == g
        rel = p.y_true[idx].astype(float)
        if (rel > 0).any():
            out.append((rel, p.y_pred[idx].astype(float)))
    if not out:
        raise CouldNotRun("no query in the rows has a relevant item")
    return out


def _ranked(rel: Array, score: Array) -> Array:
    """Relevance in the model's order (ties broken by position, stable)."""
    return rel[np.argsort(-score, kind="stable")]


def ndcg(p: Predictions, k: int | None = None) -> float:
    values = []
    for rel, score in _queries(p):
        if len(rel) == 1:
            values.append(1.0)  # one relevant document: any order is ideal
            continue
        values.append(float(skm.ndcg_score(rel[None, :], score[None, :], k=k)))
    return float(np.mean(values))


def average_precision(rel: Array, score: Array) -> float:
    hits = _ranked(rel, score) > 0
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


def mean_average_precision(p: Predictions, k: int | None = None) -> float:
    return float(np.mean([average_precision(rel, score) for rel, score in _queries(p)]))


def mrr(p: Predictions, k: int | None = None) -> float:
    ranks = [int(np.argmax(_ranked(rel, score) > 0)) + 1 for rel, score in _queries(p)]
    return float(np.mean([1.0 / r for r in ranks]))


# -- the table ----------------------------------------------------------------------------------------

Metric = Callable[[Predictions, int | None], float]

METRICS: dict[Task, dict[str, Metric]] = {
    "classification": {
        "accuracy": lambda p, k: float(skm.accuracy_score(p.y_true, p.y_pred)),
        "balanced_accuracy": lambda p, k: float(skm.balanced_accuracy_score(p.y_true, p.y_pred)),
        "precision": _averaged(skm.precision_score),
        "recall": _averaged(skm.recall_score),
        "f1": _averaged(skm.f1_score),
        "roc_auc": roc_auc,
        "log_loss": log_loss,
    },
    "regression": {
        "mae": lambda p, k: float(skm.mean_absolute_error(p.y_true, p.y_pred)),
        "mse": lambda p, k: float(skm.mean_squared_error(p.y_true, p.y_pred)),
        "rmse": lambda p, k: float(np.sqrt(skm.mean_squared_error(p.y_true, p.y_pred))),
        "r2": lambda p, k: float(skm.r2_score(p.y_true, p.y_pred)),
    },
    "ranking": {"ndcg": ndcg, "map": mean_average_precision, "mrr": mrr},
}
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "mse", "rmse"})


def metric_fn(task: Task, name: str) -> Metric:
    try:
        return METRICS[task][name]
    except KeyError:
        known = ", ".join(sorted(METRICS[task]))
        raise CouldNotRun(f"unknown metric {name!r} for a {task} task (known: {known})", True) from None


def compute(task: Task, name: str, p: Predictions, k: int | None = None) -> float:
    fn = metric_fn(task, name)
    if len(p.y_true) == 0:
        raise CouldNotRun(f"{name}: no rows")
    return fn(p, k)
