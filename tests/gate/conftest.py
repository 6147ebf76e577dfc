"""Fixtures of the gate tests (`s3_server` lives in tests/conftest.py: others use it too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.services import MLflowServer, mlflow_uris_restored


@pytest.fixture(autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    with mlflow_uris_restored():
        yield


@dataclass(frozen=True)
class ChurnModels:
    """One registered model name with a version per kind, and its training data and holdout on disk."""

    tracking_uri: str
    name: str
    versions: dict[str, str]
    train: Path
    holdout: Path


@pytest.fixture(scope="session")
def churn_models(mlflow_server: MLflowServer, session_dir: Path) -> ChurnModels:
    """good, weaker, poor, leaky, unfair (scikit-learn, skops) and slow (models-from-code pyfunc)."""
    from churn import data, register, register_slow
    from mlflow import MlflowClient

    work = session_dir / "churn"
    work.mkdir(parents=True, exist_ok=True)
    train, holdout = data(3000, 1), data(2000, 2)
    train.to_parquet(work / "train.parquet")
    holdout.to_parquet(work / "holdout.parquet")
    name = f"churn-{uuid.uuid4().hex[:6]}"
    versions = {
        kind: register(mlflow_server.uri, name, kind, train, str(work / "train.parquet"))
        for kind in ("good", "weaker", "poor", "leaky", "unfair")
    }
    versions["slow"] = register_slow(mlflow_server.uri, name, train, work)
    client = MlflowClient(mlflow_server.uri)
    client.set_registered_model_alias(name, "champion", versions["good"])
    client.set_registered_model_alias(name, "baseline", versions["weaker"])
    return ChurnModels(mlflow_server.uri, name, versions, work / "train.parquet", work / "holdout.parquet")
