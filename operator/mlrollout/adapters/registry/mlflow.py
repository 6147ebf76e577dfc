"""MLflow's REST API, called directly with short timeouts.

The MLflow client retries for minutes on a dead server; an operator tick must answer quickly and
let decide() own the backoff, so this talks to the two endpoints it needs itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel

NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


@dataclass(frozen=True)
class MlflowRegistry:
    tracking_uri: str
    timeout: float = 5.0

    def resolve(self, ref: ModelRef) -> ResolvedModel | RegistryProblem:
        """An exact version for the reference; a version must exist, an alias must point somewhere."""
        if ref.version is not None:
            found = self._get("model-versions/get", {"name": ref.name, "version": ref.version})
            if isinstance(found, RegistryProblem):
                return _explain(found, f"registered model {ref.name!r} has no version {ref.version}")
            return ResolvedModel(ref.name, str(found["model_version"]["version"]))
        assert ref.alias is not None
        found = self._get("registered-models/alias", {"name": ref.name, "alias": ref.alias})
        if isinstance(found, RegistryProblem):
            return _explain(found, f"registered model {ref.name!r} has no alias {ref.alias!r}")
        return ResolvedModel(ref.name, str(found["model_version"]["version"]), alias=ref.alias)

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any] | RegistryProblem:
        url = f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
        try:
            response = requests.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as e:
            return RegistryProblem(
                "RegistryUnreachable", f"MLflow at {self.tracking_uri} unreachable: {_short(e)}"
            )
        if response.ok:
            body: dict[str, Any] = response.json()
            return body
        code = _error_code(response)
        if response.status_code == 404 or code in NOT_FOUND_CODES:
            return RegistryProblem("ModelNotFound", code or "not found")
        if response.status_code >= 500:
            return RegistryProblem("RegistryUnreachable", f"MLflow answered HTTP {response.status_code}")
        return RegistryProblem("RegistryError", f"MLflow answered HTTP {response.status_code}: {code}")


def _explain(problem: RegistryProblem, not_found: str) -> RegistryProblem:
    if problem.reason == "ModelNotFound":
        return RegistryProblem("ModelNotFound", not_found)
    return problem


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error_code", ""))
    except ValueError:
        return ""


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:197] + "..."
