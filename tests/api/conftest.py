"""Installs the CRD on the harness's control plane for the admission tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kube import KubeEnv

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "mlrollout.io_modeldeployments.yaml"


@pytest.fixture(scope="session")
def crd_installed(kube: KubeEnv) -> str:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE), check=True)
    kube.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modeldeployments.mlrollout.io",
        check=True,
    )
    return str(CRD_FILE)
