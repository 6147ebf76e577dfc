"""The typed models accept what the CRD accepts and reject what it rejects, pointing at the field."""

from __future__ import annotations

from typing import Any

import pytest
from md_cases import INVALID, Invalid, valid_specs
from pydantic import ValidationError

from mlrollout.api import ModelDeploymentSpec, ModelDeploymentStatus, Phase


def k8s_paths(error: ValidationError) -> list[str]:
    """Pydantic error locations in Kubernetes style (spec.a.b[0].c), plus a rule's own fieldPath."""
    paths = []
    for item in error.errors():
        path = "spec"
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = str(item.get("msg", ""))
        if message.startswith("Value error, ") and ": " in message:
            path += "." + message.removeprefix("Value error, ").split(": ", 1)[0]
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", list(valid_specs()))
def test_valid_specs_parse_and_round_trip(name: str) -> None:
    spec = ModelDeploymentSpec.model_validate(valid_specs()[name])
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert ModelDeploymentSpec.model_validate(dumped) == spec


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_specs_are_rejected_naming_the_field(case: Invalid) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelDeploymentSpec.model_validate(case.spec())
    paths = k8s_paths(caught.value)
    assert any(p.startswith(case.field) for p in paths), paths


def test_at_least_fifteen_invalid_cases() -> None:
    assert len(INVALID) >= 15
    assert len({c.id for c in INVALID}) == len(INVALID)


def test_defaults_are_filled() -> None:
    spec = ModelDeploymentSpec.model_validate(valid_specs()["minimal"])
    assert spec.serving.replicas == 1
    assert spec.serving.port == 8080
    assert spec.registry.champion_alias == "champion"
    assert spec.traffic is None


def test_status_parses_what_the_operator_writes() -> None:
    raw: dict[str, Any] = {
        "phase": "Healthy",
        "observedGeneration": 3,
        "stableVersion": "6",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
        "monitoring": {
            "verdict": "NoDrift",
            "columns": [{"column": "age", "test": "ks", "statistic": 0.1, "pValue": 0.3, "drifted": False}],
        },
        "rollout": {
            "candidate": {"modelName": "churn", "version": "7"},
            "gate": {"version": "7", "job": "churn-gate-7-1", "phase": "Passed"},
            "analysis": {"stage": "step-2", "startedAt": "2025-01-01T00:00:00Z", "verdict": "Running"},
        },
    }
    status = ModelDeploymentStatus.model_validate(raw)
    assert status.phase is Phase.HEALTHY
    assert status.monitoring is not None and status.monitoring.columns[0].p_value == 0.3
    assert status.rollout is not None and status.rollout.gate is not None
    assert status.rollout.gate.phase == "Passed"
    again = ModelDeploymentStatus.model_validate(
        status.model_dump(by_alias=True, mode="json", exclude_none=True)
    )
    assert again == status
