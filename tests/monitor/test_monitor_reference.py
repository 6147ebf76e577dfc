"""Which reference the monitor compares live inputs with: the serving version's own (the built-in
trainer's lineage tag mlrollout.reference_uri, here a runs:/ artifact on a real MLflow server) before
spec.monitoring.referenceUri, so a retrained version is judged against the data it learned from."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from job_data import features, write_log, write_reference

from mlrollout.monitor.job import REFERENCE_URI_TAG, BadInput, MonitorConfig, reference_uri, run
from mlrollout.monitor.stats.drift import DriftSettings

pytestmark = pytest.mark.services

NOW = datetime.now(UTC)


def register(tracking_uri: str, reference: Any, tag: bool) -> tuple[str, str, str]:
    """A version whose run logged `reference` as reference/reference.parquet: (name, version, runs:/ URI)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = f"monitored-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("Default")
    run_id = client.create_run(experiment.experiment_id if experiment else "0").info.run_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "reference.parquet"
            reference.to_parquet(path)
            client.log_artifact(run_id, str(path), artifact_path="reference")
    uri = f"runs:/{run_id}/reference/reference.parquet"
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    if tag:
        client.set_model_version_tag(name, version, REFERENCE_URI_TAG, uri)
    return name, str(version), uri


def config(tmp_path: Path, **kw: Any) -> MonitorConfig:
    values: dict[str, Any] = {
        "namespace": "ns",
        "name": "churn",
        "reference_uri": str(tmp_path / "spec-reference.parquet"),
        "inference_log_uri": str(tmp_path / "log"),
        "settings": DriftSettings(min_samples=200),
        "window_seconds": None,
        "version": "1",
    }
    return MonitorConfig(**(values | kw))


def test_the_versions_own_reference_wins_over_the_specs(mlflow_server: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_reference(tmp_path / "spec-reference.parquet", rng)  # the parent's data: no shift
    shifted = features(rng, 2000, shift=1.0)  # what the retrained version learned from
    shifted = shifted.assign(prediction=rng.normal(1.0, 1, size=len(shifted)))
    name, version, uri = register(mlflow_server.uri, shifted, tag=True)
    write_log(tmp_path / "log", rng, 1000, shift=1.0, version="1")  # traffic like the new training data
    retrained = config(tmp_path, model_name=name, version=version, tracking_uri=mlflow_server.uri)
    assert reference_uri(retrained) == uri
    patch = run(retrained, NOW)
    assert patch.get("verdict") == "NoDrift", patch
    # without the lineage tag: the spec's reference, and the same traffic is drift
    name2, version2, _ = register(mlflow_server.uri, shifted, tag=False)
    elsewhere = config(tmp_path, model_name=name2, version=version2, tracking_uri=mlflow_server.uri)
    assert reference_uri(elsewhere) == str(tmp_path / "spec-reference.parquet")
    patch = run(elsewhere, NOW)
    assert patch.get("verdict") == "Drift", patch


def test_an_unreachable_registry_is_bad_input_never_a_guess(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # as the Job's entry bounds them
    cfg = config(tmp_path, model_name="churn", version="4", tracking_uri="http://127.0.0.1:9")
    with pytest.raises(BadInput) as raised:
        reference_uri(cfg)
    assert raised.value.reason == "RegistryUnreachable" and "churn version 4" in str(raised.value)
    patch = run(cfg, NOW)
    assert patch["reason"] == "RegistryUnreachable" and "verdict" not in patch


def test_a_lineage_reference_that_cannot_be_downloaded_is_named(mlflow_server: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    name, version, _ = register(mlflow_server.uri, features(rng, 100, 0.0), tag=False)
    from mlflow import MlflowClient

    MlflowClient(mlflow_server.uri).set_model_version_tag(
        name, version, REFERENCE_URI_TAG, "runs:/0123456789abcdef/reference/reference.parquet"
    )
    write_log(tmp_path / "log", rng, 300, shift=0.0, version="1")
    patch = run(config(tmp_path, model_name=name, version=version, tracking_uri=mlflow_server.uri), NOW)
    assert patch["reason"] == "NoReference" and "runs:/0123456789abcdef" in patch["message"]
