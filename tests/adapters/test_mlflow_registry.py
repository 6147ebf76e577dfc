"""Resolving versions and aliases against a real MLflow tracking server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel


def test_unreachable_registry_answers_quickly() -> None:
    registry = MlflowRegistry("http://127.0.0.1:9", timeout=2)
    result = registry.resolve(ModelRef(name="m", version="1"))
    assert isinstance(result, RegistryProblem)
    assert result.reason == "RegistryUnreachable"


@pytest.mark.services
def test_resolution_against_real_mlflow(mlflow_server: Any) -> None:
    from mlflow import MlflowClient

    name = f"reg-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source="s3://bucket/m")
    client.set_registered_model_alias(name, "champion", "2")
    registry = MlflowRegistry(mlflow_server.uri)

    assert registry.resolve(ModelRef(name=name, version="3")) == ResolvedModel(name, "3")
    assert registry.resolve(ModelRef(name=name, alias="champion")) == ResolvedModel(
        name, "2", alias="champion"
    )
    for ref, hint in [
        (ModelRef(name=name, version="9"), "no version 9"),
        (ModelRef(name=name, alias="nope"), "no alias 'nope'"),
        (ModelRef(name=f"{name}-absent", version="1"), "no version 1"),
        (ModelRef(name=f"{name}-absent", alias="champion"), "no alias"),
    ]:
        result = registry.resolve(ref)
        assert isinstance(result, RegistryProblem), ref
        assert result.reason == "ModelNotFound", result
        assert hint in result.message
