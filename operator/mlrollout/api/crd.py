"""Generate the CustomResourceDefinition from the API models: the models are the single source of truth.

`python -m mlrollout.api.crd > crds/mlrollout.io_modeldeployments.yaml` regenerates the file;
a test checks that the committed file equals the output.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel

from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus

Schema = dict[str, Any]

_DROP = {"title", "additionalProperties", "discriminator"}

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryVersion"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.weights.canary"},
    {"name": "Drift", "type": "string", "jsonPath": ".status.monitoring.verdict"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's JSON schema as a Kubernetes structural schema (refs inlined, no nulls, no anyOf)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    if "$ref" in node:
        merged = {**defs[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    node = dict(node)
    if "anyOf" in node:
        return _collapse_any_of(node, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if node.get("default", 0) is None:
        del node["default"]
    out: Schema = {k: v for k, v in node.items() if k not in _DROP | {"properties", "items"}}
    if "properties" in node:
        out["properties"] = {name: _convert(prop, defs) for name, prop in node["properties"].items()}
        out["type"] = "object"
    elif node.get("type") == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs)
        elif extra is not False:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("additionalProperties") is True or _is_open_model(node):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = _convert(node["items"], defs)
    if "format" in out and out["format"] not in {"date-time", "int64", "int32", "double", "float"}:
        del out["format"]
    return dict(sorted(out.items()))


def _is_open_model(node: Schema) -> bool:
    return "properties" in node and node.get("additionalProperties") is True


def _collapse_any_of(node: Schema, defs: dict[str, Schema]) -> Schema:
    variants = [v for v in node["anyOf"] if v.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(variants) == 1:
        return _convert({**variants[0], **rest}, defs)
    types = sorted(_convert(v, defs).get("type", "") for v in variants)
    if types == ["integer", "string"]:
        patterns = [v["pattern"] for v in variants if "pattern" in v]
        out: Schema = {
            **{k: v for k, v in rest.items() if k not in _DROP},
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        }
        if patterns:
            out["pattern"] = patterns[0]
        return out
    raise ValueError(f"no structural form for anyOf {types}")


def crd() -> Schema:
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    spec_schema["description"] = "What to serve, how to release it, how to watch and retrain it."
    status_schema["description"] = "Observed state; every bit of rollout state lives here."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": names.CRD_NAME},
        "spec": {
            "group": names.GROUP,
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": list(names.CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A machine learning model's whole production loop.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Shared sub-schemas are written out in full: anchors and aliases confuse readers and tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Generated from mlrollout.api by `python -m mlrollout.api.crd`; do not edit by hand.\n"
    return header + yaml.dump(crd(), Dumper=_NoAliasDumper, sort_keys=False, width=110)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
