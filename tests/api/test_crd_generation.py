"""The committed CRD is exactly what the models generate, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlrollout.api import names
from mlrollout.api.crd import crd, render

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "mlrollout.io_modeldeployments.yaml"


def test_committed_crd_equals_generated() -> None:
    assert CRD_FILE.read_text() == render(), "regenerate: python -m mlrollout.api.crd > " + str(CRD_FILE)


def _walk(node: dict[str, Any], path: str) -> list[str]:
    problems = []
    if "$ref" in node or "title" in node:
        problems.append(f"{path}: $ref/title left in")
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: anyOf is not structural")
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if node.get("default", 0) is None:
        problems.append(f"{path}: null default")
    for name, child in node.get("properties", {}).items():
        problems += _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    return problems


def test_schema_is_structural() -> None:
    version = crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema["properties"]["spec"], "spec") == []
    assert _walk(schema["properties"]["status"], "status") == []


def test_names_columns_and_status_subresource() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    assert doc["metadata"]["name"] == "modeldeployments.mlrollout.io"
    assert doc["spec"]["names"]["shortNames"] == list(names.SHORT_NAMES)
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Stable", "Canary", "Weight", "Drift", "Age"]


def test_every_cross_field_rule_has_a_message() -> None:
    text = CRD_FILE.read_text()
    doc = yaml.safe_load(text)
    rules: list[dict[str, str]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            rules.extend(node.get("x-kubernetes-validations", []))
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(doc)
    assert len(rules) >= 15
    assert all(r.get("message") for r in rules)
    assert any("exactly one of canary, blueGreen, shadow, abTest" in r["message"] for r in rules)
    assert any("isSorted" in r["rule"] for r in rules)
