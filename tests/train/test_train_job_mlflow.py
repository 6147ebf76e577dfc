"""`mlrollout train` as a process against a real MLflow server: the version, its lineage, its reference
snapshot (read the way the monitor reads it) and a model the serving runtime loads without pickles."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from retrain_data import TARGET, churn

from harness.services import MLflowServer, mlflow_uris_restored
from mlrollout.adapters.datasets.fsspec_reader import fingerprint
from mlrollout.api.training import TAG_FEATURE_IMPORTANCE, TrainJobConfig, TrainReport
from mlrollout.monitor.importance import decode
from mlrollout.monitor.job import MonitorConfig, importance_of
from mlrollout.monitor.performance import Performance
from mlrollout.monitor.stats.drift import DriftSettings

pytestmark = pytest.mark.services
MLROLLOUT = str(Path(sys.executable).parent / "mlrollout")


@pytest.fixture(autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    with mlflow_uris_restored():
        yield


def use_registry(server: MLflowServer) -> None:
    """As a serving pod: MLFLOW_TRACKING_URI points at the registry (restored after the test)."""
    import mlflow

    mlflow.set_tracking_uri(server.uri)
    os.environ["MLFLOW_TRACKING_URI"] = server.uri


def run_train(tmp_path: Path, config: TrainJobConfig) -> tuple[int, TrainReport | None, str]:
    path = tmp_path / "train.json"
    path.write_text(config.model_dump_json(by_alias=True, exclude_none=True))
    term = tmp_path / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [MLROLLOUT, "train", "--config", str(path), "--termination-log", str(term)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    report = TrainReport.model_validate_json(term.read_text()) if term.exists() else None
    return proc.returncode, report, proc.stdout + proc.stderr


def config(server: MLflowServer, dataset: Path, name: str, **trainer: Any) -> TrainJobConfig:
    return TrainJobConfig.model_validate(
        {
            "modelName": name,
            "trackingUri": server.uri,
            "datasetUri": str(dataset),
            "parentVersion": "3",
            "trigger": "drift: input drift on 2 column(s) (tenure, monthly_charges)",
            "deployment": "ml/churn",
            "attempt": 2,
            "trainer": {"target": TARGET, "exclude": ["customer_id"], "seed": 1, **trainer},
        }
    )


def test_train_registers_a_version_with_lineage_that_the_runtime_loads(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    import sklearn
    import skops
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from mlrollout.monitor.job import read_reference
    from mlrollout.runtime.loading import load_model, predict_checked

    frame = churn(1500, 11, shift=0.5)
    dataset = tmp_path / "train.parquet"
    frame.to_parquet(dataset)
    name = f"churn-{uuid.uuid4().hex[:6]}"
    cfg = config(mlflow_server, dataset, name, estimator="logistic_regression", trials=3)
    cfg = cfg.model_copy(update={"reference_dir": str(tmp_path / "references")})

    code, report, output = run_train(tmp_path, cfg)
    assert code == 0, output
    assert report is not None and report.outcome == "registered", output
    assert report.version == "1" and report.trials == 3 and report.metric == "roc_auc"
    assert report.value is not None and report.value > 0.7

    client = MlflowClient(mlflow_server.uri)
    mv = client.get_model_version(name, report.version)
    assert mv.tags["mlrollout.parent_version"] == "3"
    assert mv.tags["mlrollout.data_hash"] == fingerprint(frame) == report.data_hash
    assert mv.tags["mlrollout.trigger"].startswith("drift: input drift")
    assert mv.tags["mlrollout.training_data"] == str(dataset)
    assert mv.tags["mlrollout.reference_uri"] == report.reference_uri
    run = client.get_run(mv.run_id)
    assert run.data.params["estimator"] == "logistic_regression"
    assert {"best.C", "best.class_weight"} <= set(run.data.params)
    assert run.data.metrics["validation_roc_auc"] == pytest.approx(report.value)
    assert run.data.metrics["trials"] == 3

    # the reference the monitor compares live inputs with: the model's inputs and its predictions
    assert report.reference_uri is not None and report.reference_uri.startswith(str(tmp_path / "references"))
    reference = read_reference(report.reference_uri)
    assert list(reference.columns) == ["tenure", "monthly_charges", "support_calls", "contract", "prediction"]
    assert len(reference) == 1500
    # ... and the same snapshot as an artifact of the run
    artifacts = [a.path for a in client.list_artifacts(mv.run_id, "reference")]
    assert artifacts == ["reference/reference.parquet"]

    # the serving runtime loads it (skops, never a pickle) and predicts
    # (its median imputer keeps a numpy dtype: the one type serving must trust beyond skops' defaults)
    assert mv.tags["mlrollout.skops_types"] == "numpy.dtype"
    use_registry(mlflow_server)
    # its requirements: this image's versions of what the pipeline loads with, nothing guessed
    logged = Path(download_artifacts(f"models:/{name}/{report.version}", dst_path=str(tmp_path / "dl")))
    requirements = set((logged / "requirements.txt").read_text().split())
    assert {f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"} <= requirements
    model = load_model(
        f"models:/{name}/{report.version}",
        cache_dir=str(tmp_path / "cache"),
        trusted_types=("numpy.dtype",),
        name=name,
        version=report.version,
    )
    assert model.flavor == "sklearn" and model.task == "classification"
    rows = frame.drop(columns=["customer_id", TARGET]).head(5).to_dict(orient="records")
    predictions = predict_checked(model, model.schema.parse_mlflow({"dataframe_records": rows}))
    assert predictions.shape == (5,) and set(predictions.tolist()) <= {0, 1}

    # the training-time importance the monitor ranks the labelled window's importance against
    inputs = ["tenure", "monthly_charges", "support_calls", "contract"]
    assert run.data.metrics and set(decode(mv.tags[TAG_FEATURE_IMPORTANCE]) or {}) == set(inputs)
    live = churn(1500, 12, shift=0.5)  # same relationship as in training: the ranking holds
    rows = live[inputs].to_dict(orient="records")
    labelled = (
        live[inputs]
        .add_prefix("input.")
        .assign(
            prediction=predict_checked(model, model.schema.parse_mlflow({"dataframe_records": rows})),
            label=live[TARGET].astype(str),  # as posted to /feedback
        )
    )
    monitor = MonitorConfig(
        namespace="ml",
        name="churn",
        reference_uri="",
        inference_log_uri=str(tmp_path / "log"),
        settings=DriftSettings(),
        version=report.version,
        model_name=name,
        tracking_uri=mlflow_server.uri,
        trusted_types=("numpy.dtype",),
    )
    performance = Performance({}, len(labelled), "classification", labelled=labelled)
    stability = importance_of(monitor, performance)
    # 4 features: 0.8 is one adjacent pair swapped (the shifted inputs move tenure and charges)
    assert stability.value is not None and stability.value >= 0.79, stability


def test_a_forest_names_the_types_serving_must_trust_and_lands_in_the_run_artifacts(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from mlrollout.runtime.loading import ModelLoadError, load_model

    frame = churn(400, 12)
    dataset = tmp_path / "train.csv"
    frame.to_csv(dataset, index=False)
    name = f"churn-rf-{uuid.uuid4().hex[:6]}"
    cfg = config(mlflow_server, dataset, name, estimator="random_forest", trials=2, search="random")
    code, report, output = run_train(tmp_path, cfg)
    assert code == 0, output
    assert report is not None and report.version is not None
    types = (
        MlflowClient(mlflow_server.uri).get_model_version(name, report.version).tags["mlrollout.skops_types"]
    )
    assert "sklearn.tree._tree.Tree" in types.split(",")
    # no referenceDir: the snapshot's URI is the run artifact
    assert report.reference_uri == f"runs:/{report.run_id}/reference/reference.parquet"
    uri = f"models:/{name}/{report.version}"
    use_registry(mlflow_server)
    with pytest.raises(ModelLoadError, match="not trusted"):
        load_model(uri, cache_dir=str(tmp_path / "cache"))
    model = load_model(uri, cache_dir=str(tmp_path / "cache"), trusted_types=tuple(types.split(",")))
    assert model.task == "classification"


def test_a_missing_dataset_is_bad_input_and_registers_nothing(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    name = f"churn-none-{uuid.uuid4().hex[:6]}"
    cfg = config(mlflow_server, tmp_path / "nope.parquet", name, estimator="logistic_regression", trials=1)
    code, report, output = run_train(tmp_path, cfg)
    assert code == 3, output
    assert report is not None and report.outcome == "error"
    assert report.reason is not None and "does not exist" in report.reason
    assert MlflowClient(mlflow_server.uri).search_model_versions(f"name='{name}'") == []
