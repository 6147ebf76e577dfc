"""manifests/: `kubectl apply -k manifests/` installs the operator the chart installs; every example is
valid for the operator's own models, for kubeconform and for the real API server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts.chart_support import (
    CRD_FILE,
    EXAMPLES,
    MANIFESTS,
    Obj,
    by_kind,
    docs,
    kubeconform,
    pod_specs,
    render,
    require_harness_nodes,
    run,
    tools_dir,
    wait_for,
)
from harness.kube import KubeEnv

STRATEGIES = {"canary", "blueGreen", "shadow", "abTest"}
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
SYSTEM_NS = "mlrollout-system"


def kustomize(path: Path = MANIFESTS) -> str:
    return run([str(tools_dir() / "kubectl"), "kustomize", str(path)]).stdout


def example(path: Path) -> Obj:
    obj: Obj = yaml.safe_load(path.read_text())
    return obj


# -- offline ------------------------------------------------------------------------------------------


def test_kustomization_installs_namespace_crd_rbac_and_operator() -> None:
    objs = docs(kustomize())
    assert sorted(o["kind"] for o in objs) == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
        ]
    )
    (ns,) = by_kind(objs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in objs:
        if o["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == SYSTEM_NS, o["metadata"]
        assert "helm.sh/chart" not in o["metadata"].get("labels", {})
    (crd,) = by_kind(objs, "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD_FILE.read_text())


def test_manifests_are_the_chart() -> None:
    """Same objects as `helm template` of the chart in its default (cluster-wide) mode, Helm labels aside."""

    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {
                k: strip(v)
                for k, v in o.items()
                if k not in ("helm.sh/chart", "app.kubernetes.io/managed-by")
            }
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    chart = docs(render("jobs.serviceAccount.create=false", namespace=SYSTEM_NS, release="mlrollout"))
    plain = [o for o in docs(kustomize()) if o["kind"] not in ("Namespace", "CustomResourceDefinition")]

    def key(o: Obj) -> tuple[str, str]:
        return (o["kind"], o["metadata"]["name"])

    assert sorted(map(strip, plain), key=key) == sorted(map(strip, chart), key=key)


def test_job_service_account_manifest_matches_the_chart() -> None:
    plain = docs(kustomize(MANIFESTS / "job-serviceaccount"))
    chart = [o for o in docs(render("jobs.namespaces={ml}")) if o["metadata"]["name"] == "mlrollout-job"]
    assert sorted(o["kind"] for o in plain) == sorted(o["kind"] for o in chart)
    assert by_kind(plain, "Role")[0]["rules"] == by_kind(chart, "Role")[0]["rules"]
    assert all("namespace" not in o["metadata"] for o in plain)  # applied with -n <namespace>


def test_there_is_one_example_per_strategy() -> None:
    seen = {}
    for path in EXAMPLE_FILES:
        obj = example(path)
        assert obj["apiVersion"] == "mlrollout.io/v1alpha1" and obj["kind"] == "ModelDeployment"
        assert "namespace" not in obj["metadata"], "examples go to the namespace of the user's choice"
        (strategy,) = obj["spec"]["strategy"]
        seen[strategy] = path.name
    assert set(seen) == STRATEGIES, seen


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_parses_with_the_operator_models(path: Path) -> None:
    from mlrollout.api.spec import ModelDeploymentSpec

    spec = ModelDeploymentSpec.model_validate(example(path)["spec"])
    assert spec.serving.resources is not None
    assert spec.serving.resources.requests and spec.serving.resources.limits


def test_operator_deployment_is_locked_down() -> None:
    (spec,) = pod_specs(docs(kustomize()))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = spec["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])


# -- the real API server ----------------------------------------------------------------------------


@pytest.mark.integration
def test_manifests_and_examples_pass_kubeconform(schema_dir: Path) -> None:
    text = "\n---\n".join(
        [kustomize(), kustomize(MANIFESTS / "job-serviceaccount"), *(p.read_text() for p in EXAMPLE_FILES)]
    )
    report = kubeconform(text, schema_dir)
    assert report["summary"]["valid"] == len(docs(text))
    assert report["summary"]["skipped"] == 0


@pytest.mark.integration
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_is_accepted_by_the_api_server(path: Path, kube: KubeEnv, crd: str, namespace: str) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(path), check=True)
    name = example(path)["metadata"]["name"]
    stored = json.loads(
        kube.kubectl("get", "modeldeployment", name, "-n", namespace, "-o", "json", check=True).stdout
    )
    assert stored["spec"]["model"] == example(path)["spec"]["model"]
    (strategy,) = example(path)["spec"]["strategy"]
    assert strategy in stored["spec"]["strategy"]


@pytest.mark.integration
def test_job_service_account_applies_per_namespace(kube: KubeEnv, crd: str, namespace: str) -> None:
    kube.kubectl("apply", "-k", str(MANIFESTS / "job-serviceaccount"), "-n", namespace, check=True)
    sa = f"system:serviceaccount:{namespace}:mlrollout-job"
    yes = kube.kubectl(
        "auth",
        "can-i",
        "patch",
        "modeldeployments.mlrollout.io",
        "--subresource=status",
        f"--as={sa}",
        "-n",
        namespace,
    )
    assert yes.stdout.strip() == "yes", yes.stderr
    no = kube.kubectl(
        "auth", "can-i", "patch", "modeldeployments.mlrollout.io", f"--as={sa}", "-n", namespace
    )
    assert no.stdout.strip() == "no"


@pytest.fixture
def system_namespace_free(kube: KubeEnv, crd: str) -> Iterator[None]:
    """manifests/ installs into mlrollout-system and cluster-scoped names; clean both up after, but never
    the CRD, which other tests of the session share."""

    def cleanup() -> None:
        objs = [o for o in docs(kustomize()) if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        for o in objs:
            kube.kubectl("delete", o["kind"].lower(), o["metadata"]["name"], "--ignore-not-found")
        kube.kubectl("delete", "namespace", SYSTEM_NS, "--ignore-not-found", "--wait=true", timeout=180)

    cleanup()
    yield
    cleanup()


@pytest.mark.integration
def test_kubectl_apply_k_installs_the_operator(kube: KubeEnv, system_namespace_free: None) -> None:
    require_harness_nodes(kube.external)
    r = kube.kubectl("apply", "-k", str(MANIFESTS))
    assert r.returncode == 0, r.stderr
    assert "PodSecurity" not in r.stderr and "would violate" not in r.stderr, r.stderr
    # The namespace enforces the "restricted" Pod Security Standard: the operator pod exists at all only
    # if it meets it, and the Deployment becomes available only once that pod is Ready.
    r = kube.kubectl(
        "-n",
        SYSTEM_NS,
        "wait",
        "--for=condition=Available",
        "--timeout=120s",
        "deployment/mlrollout",
        timeout=150,
    )
    assert r.returncode == 0, r.stderr + kube.kubectl("-n", SYSTEM_NS, "get", "events").stdout
    sa = f"system:serviceaccount:{SYSTEM_NS}:mlrollout"
    for verb, res in [
        ("watch", "modeldeployments.mlrollout.io"),
        ("create", "deployments.apps"),
        ("list", "namespaces"),
    ]:
        r = kube.kubectl("auth", "can-i", verb, res, f"--as={sa}", "--all-namespaces")
        assert r.stdout.strip() == "yes", (verb, res)
    r = kube.kubectl("auth", "can-i", "get", "secrets", f"--as={sa}", "--all-namespaces")
    assert r.stdout.strip() == "no"
    # Idempotent: a second apply changes nothing. (The CRD is left out: client-side apply sends
    # spec.versions, a list without a merge key, back whole and reports "configured"; the diff is empty.)
    again = kube.kubectl("apply", "-k", str(MANIFESTS), check=True).stdout.strip().splitlines()
    assert all(line.endswith("unchanged") for line in again if "customresourcedefinition" not in line), again
    assert kube.kubectl("diff", "-k", str(MANIFESTS)).returncode == 0


@pytest.mark.integration
def test_the_plain_install_runs_the_real_operator(
    kube: KubeEnv, system_namespace_free: None, namespace: str, tmp_path: Path
) -> None:
    """An overlay swaps in an image the harness's pod runner executes: the operator installed by the plain
    manifests, with their ServiceAccount, reconciles an example."""
    require_harness_nodes(kube.external)
    if shutil.which("mlrollout-operator", path=str(Path(__file__).parents[2] / ".venv" / "bin")) is None:
        pytest.fail("the mlrollout-operator console script is not installed in .venv")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS, overlay)],
                "images": [
                    {
                        "name": "ghcr.io/mlrollout/mlrollout-operator",
                        "newName": "mlrollout.local/mlrollout-operator",
                    }
                ],
            }
        )
    )
    kube.kubectl("apply", "-k", str(overlay), check=True)
    r = kube.kubectl(
        "-n",
        SYSTEM_NS,
        "wait",
        "--for=condition=Available",
        "--timeout=120s",
        "deployment/mlrollout",
        timeout=150,
    )
    assert r.returncode == 0, r.stderr
    kube.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "ab-test.yaml"), check=True)

    def status() -> dict[str, Any] | None:
        out = kube.kubectl(
            "get", "modeldeployment", "recs-ab-test", "-n", namespace, "-o", "json", check=True
        )
        st: dict[str, Any] = json.loads(out.stdout).get("status") or {}
        return st if st.get("phase") else None

    wait_for("the operator to reconcile the example", status, timeout=90)
