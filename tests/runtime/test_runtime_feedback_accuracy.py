"""Labels posted to the real app's /feedback, joined by the monitor Job: accuracy equals sklearn's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import runtime_models as models
from sklearn import metrics

from conftest import AppFactory
from mlrollout.monitor.job import MonitorConfig, run
from mlrollout.monitor.performance import PerformanceSettings
from mlrollout.monitor.stats.drift import DriftSettings


def test_feedback_labels_give_accuracy_in_the_monitor_patch(
    make_client: AppFactory, lr_path: Path, tmp_path: Path
) -> None:
    logdir = tmp_path / "log"
    c = make_client(lr_path, model_name="lr", model_version="2", inference_log_uri=str(logdir))
    x, y = models.data(300, seed=5)
    predicted: list[int] = []
    truth: list[int] = []
    for i in range(0, len(x), 10):  # 30 requests of 10 rows: labels as a list per request
        batch = x.iloc[i : i + 10]
        r = c.post("/invocations", json={"dataframe_split": batch.to_dict(orient="split")})
        assert r.status_code == 200, r.text
        predicted += r.json()["predictions"]
        labels = y.iloc[i : i + 10].tolist()
        labels[0] = 1 - labels[0]  # a few mistakes the model did not make, so accuracy is not 1
        truth += labels
        ok = c.post("/feedback", json={"request_id": r.headers["x-request-id"], "label": labels})
        assert ok.status_code == 200, ok.text
    c.app.state.runtime.log.flush()  # type: ignore[attr-defined]
    x.assign(prediction=predicted).to_parquet(tmp_path / "reference.parquet")

    config = MonitorConfig(
        namespace="ns",
        name="lr",
        reference_uri=str(tmp_path / "reference.parquet"),
        inference_log_uri=str(logdir),
        settings=DriftSettings(min_samples=100),
        window_seconds=3600.0,
        version="2",
        performance=PerformanceSettings(metric="accuracy", label_delay_seconds=0, min_samples=100),
    )
    patch = run(config, datetime.now(UTC) + timedelta(seconds=1))
    assert patch["verdict"] == "NoDrift"
    assert patch["labelledSamples"] == 300
    assert patch["performance"]["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert patch["performance"]["f1"] == pytest.approx(metrics.f1_score(truth, predicted))
    assert pd.Series(truth).nunique() == 2 and "roc_auc" in patch["performance"]
