"""Credentials for the operator's calls to MLflow, from the same Secret the serving pods get, or env.

MLflow's own convention: MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (basic auth) win over
MLFLOW_TRACKING_TOKEN (bearer). Secret values never appear in a repr, a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlrollout.rollout.observed import RegistryProblem

USERNAME = "MLFLOW_TRACKING_USERNAME"
PASSWORD = "MLFLOW_TRACKING_PASSWORD"
TOKEN = "MLFLOW_TRACKING_TOKEN"
KEYS = (USERNAME, PASSWORD, TOKEN)


@dataclass(frozen=True)
class MlflowCredentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        if self.username and self.password:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}


def credentials_from_env(
    env: Mapping[str, str] | None = None,
) -> MlflowCredentials | RegistryProblem | None:
    """The operator's own credentials (its Deployment's env); None when it has none."""
    values = {k: v for k, v in (os.environ if env is None else env).items() if k in KEYS and v}
    return _credentials(values, "the operator's environment") if values else None


def credentials_from_secret(
    name: str, secret: Mapping[str, Any] | None
) -> MlflowCredentials | RegistryProblem | None:
    """Credentials in a Secret as the API server returns it (`data` base64-encoded).

    None when the Secret holds no MLflow keys (it may carry only storage credentials for the pods);
    a RegistryProblem when it is missing or unreadable, naming the Secret and the key, never a value.
    """
    if secret is None:
        return RegistryProblem("RegistryError", f"credentials Secret {name!r} not found")
    data = secret.get("data") or {}
    if not isinstance(data, Mapping):
        return RegistryProblem("RegistryError", f"credentials Secret {name!r} has no readable data")
    values: dict[str, str] = {}
    for key in KEYS:
        raw = data.get(key)
        if raw is None:
            continue
        try:
            values[key] = base64.b64decode(str(raw), validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            return RegistryProblem("RegistryError", f"credentials Secret {name!r}: {key} is not valid base64")
    values = {k: v for k, v in values.items() if v}
    return _credentials(values, f"credentials Secret {name!r}") if values else None


def _credentials(values: Mapping[str, str], where: str) -> MlflowCredentials | RegistryProblem:
    if (USERNAME in values) != (PASSWORD in values):
        have, missing = (USERNAME, PASSWORD) if USERNAME in values else (PASSWORD, USERNAME)
        return RegistryProblem("RegistryError", f"{where} sets {have} but not {missing}")
    return MlflowCredentials(values.get(USERNAME), values.get(PASSWORD), values.get(TOKEN))
