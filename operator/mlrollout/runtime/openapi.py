"""OpenAPI 3.0 description of the runtime's HTTP API (served at /openapi.json, used by fuzz tests)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "Bad input",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_ROWS = {"type": "array", "items": {}}


def _op(summary: str, body: dict[str, Any] | None = None, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ok or {}}}},
            "400": _ERROR,
            "404": _ERROR,
            "413": _ERROR,
            "422": _ERROR,
            "503": _ERROR,
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _model_params() -> list[dict[str, Any]]:
    return [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]


def build(model_name: str, version: str) -> dict[str, Any]:
    mlflow_body = {
        "oneOf": [
            {
                "type": "object",
                "required": ["dataframe_split"],
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": _ROWS},
                        },
                    }
                },
            },
            {
                "type": "object",
                "required": ["dataframe_records"],
                "properties": {"dataframe_records": {"type": "array", "items": {"type": "object"}}},
            },
            {"type": "object", "required": ["instances"], "properties": {"instances": {"type": "array"}}},
            {"type": "object", "required": ["inputs"], "properties": {"inputs": {}}},
        ]
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
        },
    }
    v2_body = {
        "type": "object",
        "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": tensor}},
    }
    feedback = {
        "type": "object",
        "required": ["request_id"],
        "properties": {
            "request_id": {"type": "string"},
            "label": {},
            "outcome": {"type": "string"},
            "value": {"type": "number"},
        },
    }
    infer = _op("Open Inference Protocol v2 inference", v2_body)
    infer["parameters"] = _model_params()
    meta = _op("Model metadata")
    meta["parameters"] = _model_params()
    ready = _op("Model readiness")
    ready["parameters"] = _model_params()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mlrollout model runtime",
            "version": "0.1.0",
            "description": f"Serves model {model_name!r} version {version}.",
        },
        "paths": {
            "/invocations": {
                "post": _op(
                    "MLflow scoring protocol",
                    mlflow_body,
                    {"type": "object", "properties": {"predictions": {"type": "array"}}},
                )
            },
            "/ping": {"get": _op("Readiness (MLflow)")},
            "/health": {"get": _op("Readiness (MLflow)")},
            "/version": {"get": _op("Runtime and model version")},
            "/v2": {"get": _op("Server metadata")},
            "/v2/health/live": {"get": _op("Liveness")},
            "/v2/health/ready": {"get": _op("Readiness")},
            "/v2/models/{name}": {"get": meta},
            "/v2/models/{name}/ready": {"get": ready},
            "/v2/models/{name}/infer": {"post": infer},
            "/feedback": {"post": _op("Ground truth or business outcome for a request id", feedback)},
            "/config": {"get": _op("Live configuration in force")},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error_code", "message"],
                    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                }
            }
        },
    }
