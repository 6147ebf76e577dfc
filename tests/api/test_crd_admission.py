"""On the real API server: valid specs are admitted, each invalid one is rejected naming its field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client
from md_cases import INVALID, Invalid, Spec, valid_specs

from harness.kube import KubeEnv
from mlrollout.api import names

pytestmark = pytest.mark.integration


def _body(name: str, spec: Spec) -> dict[str, Any]:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name}, "spec": spec}


def _create(kube: KubeEnv, namespace: str, body: dict[str, Any], strict: bool) -> None:
    api = client.CustomObjectsApi(kube.api_client())
    api.create_namespaced_custom_object(
        names.GROUP,
        names.VERSION,
        namespace,
        names.PLURAL,
        body,
        dry_run="All",
        field_validation="Strict" if strict else "Ignore",
    )


@pytest.mark.usefixtures("crd_installed")
@pytest.mark.parametrize("name", list(valid_specs()))
def test_valid_specs_are_admitted(kube: KubeEnv, namespace: str, name: str) -> None:
    _create(kube, namespace, _body(f"ok-{name}", valid_specs()[name]), strict=True)


@pytest.mark.usefixtures("crd_installed")
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_specs_are_rejected_naming_the_field(
    kube: KubeEnv, namespace: str, case: Invalid, strict: bool
) -> None:
    # Lenient clients get unknown fields pruned instead of refused: the CEL rules must still catch them.
    with pytest.raises(client.ApiException) as caught:
        _create(kube, namespace, _body(f"bad-{case.id}", case.spec()), strict=strict)
    assert caught.value.status in (400, 422)
    message = json.loads(caught.value.body)["message"]
    assert case.field in message, message


@pytest.mark.usefixtures("crd_installed")
def test_kubectl_names_the_field(kube: KubeEnv, namespace: str) -> None:
    case = next(c for c in INVALID if c.id == "weight-150")
    result = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(_body("bad", case.spec()))
    )
    assert result.returncode != 0
    assert "spec.strategy.canary.steps[0].setWeight" in result.stderr


@pytest.mark.usefixtures("crd_installed")
def test_printer_columns_and_short_name(kube: KubeEnv, namespace: str) -> None:
    body = yaml.safe_dump(_body("cols", valid_specs()["minimal"]))
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=body, check=True)
    header = kube.kubectl("get", "md", "-n", namespace, check=True).stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "DRIFT", "AGE"]
