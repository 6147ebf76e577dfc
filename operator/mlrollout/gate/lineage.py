"""A model version's lineage, as MLflow holds it: for `kubectl mlrollout history` and people.

Reads MLflow's REST API with `requests` and short timeouts (no mlflow import: the kubectl plugin
runs on a laptop). Written by the training Job (mlrollout.parent_version, mlrollout.data_hash,
mlrollout.trigger, mlrollout.training_data), the gate Job (mlrollout.gate*) and the operator
(mlrollout.rollout*), on the version and its run; version tags win over run tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

GATE = "mlrollout.gate"


@dataclass(frozen=True)
class LineageProblem:
    reason: str  # RegistryUnreachable | ModelNotFound | RegistryError
    message: str


@dataclass(frozen=True)
class Lineage:
    model_name: str
    version: str
    run_id: str | None = None
    source: str = ""
    created_ms: int | None = None
    aliases: tuple[str, ...] = ()
    data_hash: str | None = None
    training_data: str | None = None
    parent_version: str | None = None
    trigger: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    gate: str | None = None  # passed | failed (None: not gated, or it could not run: see gate_error)
    gate_checks: dict[str, str] = field(default_factory=dict)  # check tag -> verdict
    gate_report_uri: str | None = None
    gate_error: str | None = None
    rollout: str | None = None  # promoted | rolled_back | rejected | aborted
    rollout_reason: str | None = None
    rollout_at: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


_GATE_META = {f"{GATE}.{k}" for k in ("at", "report", "report_uri", "error")}


def _kv(items: Any) -> dict[str, str]:
    return {
        str(i["key"]): str(i.get("value", "")) for i in items or [] if isinstance(i, Mapping) and "key" in i
    }


def lineage_from(mv: Mapping[str, Any], run: Mapping[str, Any] | None) -> Lineage:
    """Pure: a Lineage from MLflow's model_version and run JSON documents."""
    version_tags = _kv(mv.get("tags"))
    data = (run or {}).get("data") or {}
    tags = {**_kv(data.get("tags")), **version_tags}
    return Lineage(
        model_name=str(mv.get("name", "")),
        version=str(mv.get("version", "")),
        run_id=str(mv["run_id"]) if mv.get("run_id") else None,
        source=str(mv.get("source", "")),
        created_ms=int(mv["creation_timestamp"]) if mv.get("creation_timestamp") else None,
        aliases=tuple(str(a) for a in mv.get("aliases") or ()),
        data_hash=tags.get("mlrollout.data_hash"),
        training_data=tags.get("mlrollout.training_data"),
        parent_version=tags.get("mlrollout.parent_version"),
        trigger=tags.get("mlrollout.trigger"),
        params=_kv(data.get("params")),
        gate=version_tags.get(GATE),
        gate_checks={
            k[len(GATE) + 1 :]: v
            for k, v in version_tags.items()
            if k.startswith(f"{GATE}.") and k not in _GATE_META
        },
        gate_report_uri=version_tags.get(f"{GATE}.report_uri"),
        gate_error=version_tags.get(f"{GATE}.error"),
        rollout=version_tags.get("mlrollout.rollout"),
        rollout_reason=version_tags.get("mlrollout.rollout.reason"),
        rollout_at=version_tags.get("mlrollout.rollout.at"),
        tags=tags,
    )


@dataclass(frozen=True)
class _Api:
    tracking_uri: str
    timeout: float
    headers: Mapping[str, str]

    def get(self, endpoint: str, params: Mapping[str, Any]) -> dict[str, Any] | LineageProblem:
        url = f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
        try:
            r = requests.get(url, params=dict(params), timeout=self.timeout, headers=dict(self.headers))
        except requests.RequestException as exc:
            return LineageProblem(
                "RegistryUnreachable", f"MLflow at {self.tracking_uri} unreachable: {exc}"[:300]
            )
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.ok and isinstance(body, dict):
            return body
        code = str(body.get("error_code", "")) if isinstance(body, dict) else ""
        if r.status_code == 404 or code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return LineageProblem("ModelNotFound", f"{endpoint}: {code or 'not found'}")
        return LineageProblem("RegistryError", f"MLflow answered HTTP {r.status_code} {code}".strip())


def read_lineage(
    tracking_uri: str,
    model_name: str,
    version: str,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Lineage | LineageProblem:
    """One version's lineage: training run, data hash, parameters, gate results, rollout outcome."""
    api = _Api(tracking_uri, timeout, headers or {})
    found = api.get("model-versions/get", {"name": model_name, "version": version})
    if isinstance(found, LineageProblem):
        return found
    mv = found.get("model_version") or {}
    return lineage_from(mv, _run(api, mv))


def read_history(
    tracking_uri: str,
    model_name: str,
    limit: int = 20,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> list[Lineage] | LineageProblem:
    """The newest `limit` versions of a model with their lineage, newest first."""
    api = _Api(tracking_uri, timeout, headers or {})
    escaped = model_name.replace("'", "\\'")
    found = api.get(
        "model-versions/search",
        {"filter": f"name='{escaped}'", "max_results": max(limit, 1), "order_by": "version_number DESC"},
    )
    if isinstance(found, LineageProblem):
        return found
    versions = sorted(found.get("model_versions") or [], key=lambda mv: -int(mv.get("version", 0)))[:limit]
    out = []
    for mv in versions:
        # search results may omit aliases and tags: read each version whole
        full = api.get("model-versions/get", {"name": model_name, "version": mv.get("version")})
        doc = full.get("model_version", mv) if isinstance(full, dict) else mv
        out.append(lineage_from(doc, _run(api, doc)))
    return out


def _run(api: _Api, mv: Mapping[str, Any]) -> dict[str, Any] | None:
    if not mv.get("run_id"):
        return None
    run = api.get("runs/get", {"run_id": mv["run_id"]})
    return None if isinstance(run, LineageProblem) else dict(run.get("run") or {})
