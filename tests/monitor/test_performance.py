"""Labels joined to predictions by request id; figures equal scikit-learn's on the joined rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from job_data import write_log, write_reference
from sklearn import metrics

from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.monitor.job import MonitorConfig, run
from mlrollout.monitor.performance import PerformanceSettings, evaluate, join, task_of
from mlrollout.monitor.stats.drift import DriftSettings

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def predictions(ids: list[str], preds: list[object], rows: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"request_id": ids, "row": rows or [0] * len(ids), "prediction": preds})


def labels(ids: list[str], values: list[object], ts: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ids,
            "label": values,
            "outcome": "label",
            "timestamp": ts or list(range(len(ids))),
        }
    )


def test_join_by_request_id_last_label_wins_and_lists_spread_over_rows() -> None:
    p = predictions(["a", "b", "c", "c"], [1, 0, 1, 0], rows=[0, 0, 0, 1])
    lab = pd.concat(
        [
            labels(["a", "b"], [0, 0], ts=[1.0, 1.0]),
            labels(["a", "c"], [1, json.dumps([1, 1])], ts=[2.0, 2.0]),
        ]
    )
    lab["label"] = lab["label"].astype(str)  # mixed types: the runtime writes them as text
    joined = join(p, lab)
    assert len(joined) == 4
    assert list(joined["label"]) == ["1", "0", 1, 1]


def test_unlabelled_and_outcome_only_feedback_is_not_a_label() -> None:
    p = predictions(["a", "b"], [1, 0])
    lab = pd.DataFrame(
        {"request_id": ["a", "b"], "label": [None, None], "outcome": ["converted", "converted"]}
    )
    assert join(p, lab).empty


def test_classification_figures_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.integers(0, 2, size=n)
    score = np.clip(truth * 0.6 + rng.normal(0.2, 0.3, size=n), 0, 1)
    ids = [f"r{i}" for i in range(n)]
    result = evaluate(
        predictions(ids, list(score)), labels(ids, list(truth)), PerformanceSettings(min_samples=100)
    )
    assert result.task == "classification" and result.samples == n
    hard = np.round(score).astype(int)
    assert result.figures["accuracy"] == pytest.approx(metrics.accuracy_score(truth, hard))
    assert result.figures["f1"] == pytest.approx(metrics.f1_score(truth, hard))
    assert result.figures["roc_auc"] == pytest.approx(metrics.roc_auc_score(truth, score))


def test_class_names_and_regression() -> None:
    ids = [f"r{i}" for i in range(6)]
    named = evaluate(
        predictions(ids, ["yes", "no", "yes", "no", "yes", "yes"]),
        labels(ids, ["yes", "no", "no", "no", "yes", "yes"]),
        PerformanceSettings(min_samples=1),
    )
    assert named.figures["accuracy"] == pytest.approx(5 / 6) and "roc_auc" not in named.figures
    y = [1.5, 2.0, 3.2, 4.0, 5.1, 6.3]
    p = [1.4, 2.2, 3.0, 4.4, 5.0, 6.0]
    reg = evaluate(predictions(ids, p), labels(ids, y), PerformanceSettings(metric="rmse", min_samples=1))
    assert reg.task == "regression"
    assert reg.figures["mae"] == pytest.approx(metrics.mean_absolute_error(y, p))
    assert reg.figures["rmse"] == pytest.approx(metrics.mean_squared_error(y, p) ** 0.5)
    assert reg.figures["r2"] == pytest.approx(metrics.r2_score(y, p))


def test_task_from_metric_or_labels() -> None:
    frame = pd.DataFrame({"label": [0.5, 1.7], "prediction": [0.4, 1.0]})
    assert task_of(None, frame) == "regression"
    assert task_of("accuracy", frame) == "classification"
    assert task_of(None, pd.DataFrame({"label": [0, 1], "prediction": [0, 1]})) == "classification"


def test_below_min_samples_gives_no_figures() -> None:
    ids = ["a", "b"]
    result = evaluate(predictions(ids, [1, 0]), labels(ids, [1, 0]), PerformanceSettings(min_samples=10))
    assert result.figures == {} and result.samples == 2 and "minSamples 10" in (result.message or "")


def _labels_file(root: Path, ids: list[str], values: list[int]) -> None:
    folder = root / "labels" / "date=2026-11-23"
    folder.mkdir(parents=True, exist_ok=True)
    frame = labels(ids, values)
    frame["timestamp"] = pd.Timestamp(NOW)
    frame.to_parquet(folder / "part-0.parquet")


def test_job_joins_labels_after_the_delay(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 400, shift=0.0)
    log = pd.read_parquet(tmp_path / "log" / "predictions" / "date=2026-11-23" / "part-0.parquet")
    # the runtime's timestamps: UTC datetimes; these rows are 2 hours old, the other file's are future
    log["timestamp"] = pd.Timestamp(NOW) - pd.Timedelta(hours=2)
    log.to_parquet(tmp_path / "log" / "predictions" / "date=2026-11-23" / "part-0.parquet")
    truth = (log["prediction"] > 0).astype(int).tolist()
    truth[:20] = [1 - t for t in truth[:20]]  # 20 wrong of 200
    _labels_file(tmp_path / "log", list(log["request_id"]), truth)
    config = MonitorConfig(
        namespace="ns",
        name="churn",
        reference_uri=str(tmp_path / "reference.parquet"),
        inference_log_uri=str(tmp_path / "log"),
        settings=DriftSettings(min_samples=100),
        window_seconds=4 * 3600.0,
        version="3",
        performance=PerformanceSettings(metric="accuracy", label_delay_seconds=3600, min_samples=50),
    )
    status = MonitoringStatus.model_validate(run(config, NOW))
    assert status.labelled_samples == 200
    assert status.performance is not None
    # predictions are scores around 0: classes by rounding, so compare with that rule
    hard = log["prediction"].round().astype(int)
    assert status.performance["accuracy"] == pytest.approx(metrics.accuracy_score(truth, hard))
    # a longer delay than the rows' age: nothing old enough to judge yet
    later = MonitorConfig(
        **{**config.__dict__, "performance": PerformanceSettings(label_delay_seconds=3 * 3600)}
    )
    waiting = MonitoringStatus.model_validate(run(later, NOW))
    assert waiting.performance is None and waiting.labelled_samples == 0
    assert "labelled rows" in (waiting.message or "")
