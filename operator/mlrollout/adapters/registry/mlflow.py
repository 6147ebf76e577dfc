"""MLflow's REST API, called directly with short timeouts.

The MLflow client retries for minutes on a dead server; an operator tick must answer quickly and
let decide() own the backoff, so this talks to the few endpoints it needs itself. Whatever comes
back (a refused connection, a timeout, HTML from a proxy, JSON of the wrong shape) becomes a
RegistryProblem: nothing raises out of these methods.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from mlrollout.adapters.registry.credentials import MlflowCredentials
from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel

NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
# MLflow's limits on model-version tags; longer values would be refused with a 400.
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5000


@dataclass(frozen=True)
class MlflowRegistry:
    tracking_uri: str
    credentials: MlflowCredentials | None = None
    timeout: float = 5.0

    def resolve(self, ref: ModelRef) -> ResolvedModel | RegistryProblem:
        """An exact version for the reference; a version must exist, an alias must point somewhere."""
        if ref.version is not None:
            found = self._call("GET", "model-versions/get", {"name": ref.name, "version": ref.version})
            missing = f"registered model {ref.name!r} has no version {ref.version}"
        else:
            found = self._call("GET", "registered-models/alias", {"name": ref.name, "alias": str(ref.alias)})
            missing = f"registered model {ref.name!r} has no alias {ref.alias!r}"
        if isinstance(found, RegistryProblem):
            return _explain(found, missing)
        version = _version_of(found)
        if isinstance(version, RegistryProblem):
            return version
        return ResolvedModel(ref.name, version, alias=ref.alias)

    def set_alias(self, name: str, alias: str, version: str) -> RegistryProblem | None:
        """Point `alias` at `version`; setting it where it already points changes nothing."""
        found = self._call(
            "POST", "registered-models/alias", {"name": name, "alias": alias, "version": str(version)}
        )
        if isinstance(found, RegistryProblem):
            return _explain(found, f"registered model {name!r} has no version {version}")
        return None

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> RegistryProblem | None:
        """Set each tag on the model version (setting the same value again is harmless)."""
        for key, value in tags.items():
            if not key or len(key) > MAX_TAG_KEY:
                return RegistryProblem("RegistryError", f"tag key {key[:40]!r} is empty or too long")
            found = self._call(
                "POST",
                "model-versions/set-tag",
                {"name": name, "version": str(version), "key": key, "value": str(value)[:MAX_TAG_VALUE]},
            )
            if isinstance(found, RegistryProblem):
                return _explain(found, f"registered model {name!r} has no version {version}")
        return None

    def version_tags(self, name: str, version: str) -> dict[str, str] | RegistryProblem:
        found = self._call("GET", "model-versions/get", {"name": name, "version": str(version)})
        if isinstance(found, RegistryProblem):
            return _explain(found, f"registered model {name!r} has no version {version}")
        model_version = found.get("model_version")
        tags = model_version.get("tags", []) if isinstance(model_version, dict) else None
        if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("key"), str) for t in tags
        ):
            return _odd_shape("model-versions/get")
        return {t["key"]: str(t.get("value", "")) for t in tags}

    def all_version_tags(self, name: str, pages: int = 10) -> dict[str, dict[str, str]] | RegistryProblem:
        """Tags of every version of `name` (up to `pages` pages of 1000): the registry's record of each
        release's outcome, older than anything status keeps. No such model: no versions."""
        found: dict[str, dict[str, str]] = {}
        token = ""
        escaped = name.replace("'", "\\'")
        for _ in range(pages):
            args = {"filter": f"name='{escaped}'", "max_results": "1000"} | (
                {"page_token": token} if token else {}
            )
            page = self._call("GET", "model-versions/search", args)
            if isinstance(page, RegistryProblem):
                return page
            versions = page.get("model_versions", [])
            if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
                return _odd_shape("model-versions/search")
            for v in versions:
                tags = v.get("tags", [])
                if not isinstance(tags, list):
                    return _odd_shape("model-versions/search")
                found[str(v.get("version"))] = {
                    t["key"]: str(t.get("value", "")) for t in tags if isinstance(t, dict) and "key" in t
                }
            token = str(page.get("next_page_token") or "")
            if not token:
                break
        return found

    def _call(self, method: str, endpoint: str, args: dict[str, str]) -> dict[str, Any] | RegistryProblem:
        url = f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
        headers = self.credentials.headers() if self.credentials else {}
        where = _redacted(self.tracking_uri)
        try:
            if method == "GET":
                response = requests.get(url, params=args, headers=headers, timeout=self.timeout)
            else:
                response = requests.request(method, url, json=args, headers=headers, timeout=self.timeout)
        except (requests.RequestException, ValueError, UnicodeError) as e:
            return RegistryProblem("RegistryUnreachable", f"MLflow at {where} unreachable: {_short(e)}")
        if response.ok:
            try:
                body = response.json()
            except ValueError:
                return RegistryProblem(
                    "RegistryError", f"MLflow at {where} answered {endpoint} with a body that is not JSON"
                )
            return body if isinstance(body, dict) else _odd_shape(endpoint)
        code = _error_code(response)
        if response.status_code in (401, 403):
            return RegistryProblem(
                "RegistryError",
                f"MLflow at {where} refused the operator's credentials (HTTP {response.status_code}); "
                "set MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN "
                "in spec.registry.credentialsSecret",
            )
        if response.status_code == 404 or code in NOT_FOUND_CODES:
            return RegistryProblem("ModelNotFound", code or "not found")
        answered = f"MLflow at {where} answered HTTP {response.status_code}"
        if response.status_code >= 500:
            return RegistryProblem("RegistryUnreachable", answered)
        return RegistryProblem("RegistryError", f"{answered}: {code}")


def _version_of(found: dict[str, Any]) -> str | RegistryProblem:
    model_version = found.get("model_version")
    version = model_version.get("version") if isinstance(model_version, dict) else None
    if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version).isdigit():
        return _odd_shape("model version")
    return str(version)


def _explain(problem: RegistryProblem, not_found: str) -> RegistryProblem:
    return RegistryProblem("ModelNotFound", not_found) if problem.reason == "ModelNotFound" else problem


def _odd_shape(what: str) -> RegistryProblem:
    return RegistryProblem("RegistryError", f"MLflow answered {what} with JSON of an unexpected shape")


def _error_code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error_code", "") if isinstance(body, dict) else ""
    return _short(str(code))[:64]


def _redacted(uri: str) -> str:
    """The tracking URI without any user:password@ part, fit for messages."""
    try:
        parts = urllib.parse.urlsplit(uri)
        host = f"{parts.hostname or ''}:{parts.port}" if parts.port else parts.hostname or ""
    except ValueError:
        return "<invalid URI>"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _short(error: Exception | str) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:197] + "..."
