"""The chart's operator Role is enough for the gate wiring, and no more, checked from the operator's
side on the real control plane: the executor, authenticated as a ServiceAccount bound to exactly the
rendered Role, applies a gate Job (server-side apply), reads it and its pods back, and deletes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from charts.chart_support import by_kind, docs, render, service_account_kubeconfig
from harness.kube import KubeEnv
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.jobs import gate_job
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.spec import ModelDeploymentSpec

pytestmark = pytest.mark.integration

SA = "operator-under-test"
SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {"name": "churn", "version": "3"},
        "registry": {"trackingUri": "http://mlflow.invalid:5000"},
        "serving": {"image": "ghcr.io/example/mlrollout-runtime:0.1.0"},  # left to kwok: never runs here
        "validation": {"dataset": {"uri": "s3://b/holdout.parquet", "target": "churned"}, "timeout": "2m"},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
)


def test_the_operator_role_runs_the_gate_job_lifecycle(
    kube: KubeEnv, namespace: str, crd_installed: str, tmp_path: Path
) -> None:
    ns = namespace
    roles = by_kind(docs(render(f"watchNamespaces={{{ns}}}", namespace=ns)), "Role")
    # the operator's Role (the other one is the Jobs' ServiceAccount's)
    (role,) = [r for r in roles if any("modeldeployments/finalizers" in x["resources"] for x in r["rules"])]
    bound = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": SA},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
        "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}],
    }
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA}}, ns)
    kube.apply({**role, "metadata": {"name": SA}}, ns)
    kube.apply(bound, ns)
    # A real owner: the Job's ownerReference must point at an existing ModelDeployment.
    md = {"apiVersion": "mlrollout.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "churn"}}
    kube.apply({**md, "spec": SPEC.model_dump(by_alias=True, exclude_none=True, mode="json")}, ns)
    uid = kube.kubectl("get", "modeldeployment", "churn", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    owner = Owner("churn", ns, uid)

    kubectl = kube.bin_dir / "kubectl"
    cfg = service_account_kubeconfig(str(kube.kubeconfig), ns, SA, tmp_path / "sa.kubeconfig", kubectl)
    executor = KubeExecutor(config.new_client_from_config(config_file=str(cfg)))  # type: ignore[no-untyped-call]
    manifest = gate_job(owner, SPEC, "churn", "3", 1, SPEC.serving.image)
    executor.apply(manifest)  # raises on a 403
    job = executor.read_job(ns, "churn-gate-3-1")
    assert job is not None and job["spec"]["activeDeadlineSeconds"] == 120
    assert isinstance(executor.list_job_pods(job), list)  # the pods' termination messages are readable
    executor.apply(manifest)  # a replay: the same Job, nothing changes
    executor.delete_job(ns, "churn-gate-3-1")
    executor.delete_job(ns, "churn-gate-3-1")  # gone already: fine
    assert executor.read_job(ns, "churn-gate-3-1") is None

    # Least privilege: on Jobs, that and the watch that wakes their owner; on pods, listing only.
    who = f"--as=system:serviceaccount:{ns}:{SA}"
    for verb, resource, allowed in (
        ("create", "jobs.batch", "yes"),
        ("patch", "jobs.batch", "yes"),
        ("update", "jobs.batch", "no"),
        ("list", "jobs.batch", "yes"),
        ("watch", "jobs.batch", "yes"),
        ("list", "pods", "yes"),
        ("get", "pods", "no"),
        ("delete", "pods", "no"),
        ("create", "pods/exec", "no"),
    ):
        answer = kube.kubectl("auth", "can-i", verb, resource, "-n", ns, who).stdout.strip()
        assert answer == allowed, (verb, resource, answer)
    with pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(executor.api).read_namespaced_pod("anything", ns)
    assert denied.value.status == 403
