"""The inference log through an object store (the real moto S3 server): the runtime's writer puts
predictions and labels there, the monitor Job reads them back; an unreachable store is named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from job_data import features, write_reference

from harness.s3 import S3Server
from mlrollout.monitor.job import MonitorConfig, run
from mlrollout.monitor.performance import PerformanceSettings
from mlrollout.monitor.stats.drift import DriftSettings
from mlrollout.runtime.inference_log import InferenceLog

pytestmark = pytest.mark.integration


def _config(reference: str, log: str) -> MonitorConfig:
    return MonitorConfig(
        namespace="ns",
        name="churn",
        reference_uri=reference,
        inference_log_uri=log,
        settings=DriftSettings(min_samples=100),
        window_seconds=3600.0,
        version="3",
        performance=PerformanceSettings(metric="accuracy", label_delay_seconds=0, min_samples=50),
    )


def test_runtime_writes_and_monitor_reads_s3(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env().items():  # what the registry credentials Secret gives both pods
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket(f"logs-{uuid.uuid4().hex[:6]}")
    rng = np.random.default_rng(11)
    reference = write_reference(tmp_path / "reference.parquet", rng)
    reference_uri = s3_server.put(bucket, "ref/reference.parquet", reference.read_bytes())
    log_uri = f"s3://{bucket}/logs/ns/churn"
    log = InferenceLog(log_uri, rotate_seconds=3600)
    log.start()
    live = features(rng, 300, shift=1.0)
    for i, record in enumerate(live.to_dict(orient="records")):
        log.log_predictions(f"r{i}", "churn", "3", "stable", [record], [i % 2])
        log.log_label(f"r{i}", "churn", "3", "stable", label=1 if i % 3 else 0)
    log.close()
    assert log.files_written and all(f.startswith("s3://") for f in log.files_written)

    patch = run(_config(reference_uri, log_uri), datetime.now(UTC) + timedelta(seconds=1))
    assert patch["verdict"] == "Drift" and patch["samples"] == 300
    assert {c["column"] for c in patch["columns"] if c["drifted"]} >= {"age", "city"}
    assert patch["labelledSamples"] == 300 and 0 < patch["performance"]["accuracy"] < 1


def test_an_unreachable_store_is_named_and_keeps_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    patch = run(_config("s3://nowhere/ref.parquet", "s3://nowhere/logs"), datetime.now(UTC))
    assert "verdict" not in patch and patch["reason"] == "StoreUnreachable"
    assert "s3://nowhere/logs" in patch["message"]
