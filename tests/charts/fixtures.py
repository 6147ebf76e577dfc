"""Session fixtures shared by tests/charts and tests/manifests (imported by both conftest files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charts.chart_support import CRD_FILE, wait_for, write_kubeconform_schemas
from harness.kube import KubeEnv

MD_DEFINITION = "io.mlrollout.v1alpha1.ModelDeployment"


@pytest.fixture(scope="session")
def crd(kube: KubeEnv) -> str:
    """The CRD from crds/, installed and established (Helm leaves an existing CRD alone)."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE), check=True)
    # `kubectl wait` fails outright while the new CRD has no conditions yet: poll instead.
    wait_for(
        "the CRD to be established",
        lambda: (
            kube.kubectl(
                "get",
                "crd/modeldeployments.mlrollout.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
            ).stdout
            == "True"
        ),
        timeout=60,
    )
    return str(CRD_FILE)


@pytest.fixture(scope="session")
def schema_dir(kube: KubeEnv, crd: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform schemas for every kind the test API server serves, ModelDeployment included, made
    from the server's own /openapi/v2 (no network: the published schema sets cannot be fetched here)."""

    def openapi() -> dict[str, object] | None:
        doc: dict[str, object] = json.loads(kube.kubectl("get", "--raw", "/openapi/v2", check=True).stdout)
        defs = doc.get("definitions", {})
        return doc if isinstance(defs, dict) and MD_DEFINITION in defs else None

    doc = wait_for("the CRD's schema in /openapi/v2", openapi, timeout=60, interval=1)
    out = tmp_path_factory.mktemp("kubeconform-schemas")
    assert write_kubeconform_schemas(doc, out) > 50
    return out
