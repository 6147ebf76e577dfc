"""Log the trained pipeline to MLflow (skops, never a pickle) and register a version with its lineage.

The version carries: mlrollout.parent_version, mlrollout.data_hash, mlrollout.trigger,
mlrollout.training_data (the gate's leakage check reads it), mlrollout.reference_uri (the reference
snapshot the monitor compares live inputs with), mlrollout.feature_importance (permutation
importance on the validation rows: the monitor's baseline for importance stability) and
mlrollout.skops_types (the non-default types the serving pods must trust, e.g.
sklearn.tree._tree.Tree); the run carries parameters, metrics and the importances as JSON.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlrollout.adapters.datasets.fsspec_reader import storage_options
from mlrollout.api import training as tr
from mlrollout.api.training import TrainJobConfig
from mlrollout.monitor.importance import encode

REFERENCE_ARTIFACT = "reference/reference.parquet"
PREDICTION = "prediction"  # the column name the monitor reads (mlrollout.monitor.job.PREDICTION)


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    reference_uri: str
    skops_types: tuple[str, ...]


def reference_snapshot(model: Any, inputs: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Model inputs as the runtime logs them, plus the model's predictions (for prediction drift)."""
    sample = inputs.sample(n=min(rows, len(inputs)), random_state=seed) if len(inputs) > rows else inputs
    snapshot = sample.reset_index(drop=True).copy()
    snapshot[PREDICTION] = model.predict(sample)
    return snapshot


def _write_reference(snapshot: pd.DataFrame, reference_dir: str, name: str, data_hash: str) -> str:
    import fsspec

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    uri = f"{reference_dir.rstrip('/')}/{safe}-{data_hash[:16]}.parquet"
    fs, path = fsspec.core.url_to_fs(uri, **storage_options(uri))
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as f:
        snapshot.to_parquet(f, index=False)
    return uri


def untrusted_types(model: Any) -> tuple[str, ...]:
    """Types skops will not load by default: the serving pods need them in serving.trustedTypes."""
    import skops.io

    return tuple(sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model))))


def log_and_register(
    config: TrainJobConfig,
    model: Any,
    inputs: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    data_hash: str,
    importance: Mapping[str, float] | None = None,
) -> Registered:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_experiment(config.experiment)
    trainer = config.trainer
    snapshot = reference_snapshot(model, inputs, trainer.reference_rows, trainer.seed)
    skops_types = untrusted_types(model)
    tags = {
        tr.TAG_PARENT_VERSION: config.parent_version or "",
        tr.TAG_DATA_HASH: data_hash,
        tr.TAG_TRIGGER: config.trigger[:500],
        tr.TAG_TRAINING_DATA: config.dataset_uri,
        tr.TAG_DEPLOYMENT: config.deployment,
        tr.TAG_SKOPS_TYPES: ",".join(skops_types),
    }
    encoded = encode(importance) if importance else None
    if encoded is not None:  # too many features for a tag: the run's artifact still has them
        tags[tr.TAG_FEATURE_IMPORTANCE] = encoded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation chatter, not the user's business
        with mlflow.start_run(run_name=f"{config.model_name}-train-{config.attempt}") as run:
            mlflow.set_tags(tags)
            mlflow.log_params(
                {
                    "estimator": trainer.estimator,
                    "search": trainer.search,
                    "trials": trainer.trials,
                    **{f"best.{k}": v for k, v in params.items()},
                }
            )
            mlflow.log_metrics(dict(metrics))
            if importance:
                mlflow.log_dict(dict(importance), "importance/feature_importance.json")
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "reference.parquet"
                snapshot.to_parquet(local, index=False)
                mlflow.log_artifact(str(local), artifact_path="reference")
            reference_uri = (
                _write_reference(snapshot, config.reference_dir, config.model_name, data_hash)
                if config.reference_dir
                else f"runs:/{run.info.run_id}/{REFERENCE_ARTIFACT}"
            )
            mlflow.set_tag(tr.TAG_REFERENCE_URI, reference_uri)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                skops_trusted_types=list(skops_types) or None,
                signature=infer_signature(inputs.head(100), model.predict(inputs.head(100))),
                registered_model_name=config.model_name,
                pip_requirements=pinned_requirements(),
            )
    version = str(info.registered_model_version)
    client = MlflowClient(config.tracking_uri)
    for key, value in {**tags, tr.TAG_REFERENCE_URI: reference_uri}.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    return Registered(version, run.info.run_id, reference_uri, skops_types)


def pinned_requirements() -> list[str]:
    """What the built-in pipeline needs to load, pinned to this image's versions: exact where
    MLflow's inference would be a guess, and without the subprocess that runs the model to infer."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("scikit-learn", "skops")]
