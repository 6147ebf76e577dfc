"""The chart against the real test control plane: kubeconform with the server's own schemas, server-side
dry run, `helm install`, and the installed operator (run by the pod runner under the chart's
ServiceAccount) reconciling an example. RBAC is checked from the ServiceAccounts' side."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from charts.chart_support import (
    CHART,
    EXAMPLES,
    by_kind,
    docs,
    helm,
    kubeconform,
    local_operator,
    rbac_denials,
    render,
    require_harness_nodes,
    service_account_kubeconfig,
    wait_for,
)
from harness.kube import KubeEnv
from harness.procs import tail

pytestmark = pytest.mark.integration


def value_sets(ns: str, other: str) -> dict[str, list[str]]:
    return {
        "default": [],
        "namespaced": [f"watchNamespaces={{{ns},{other}}}"],
        "everything": [
            "serviceMonitor.enabled=true",
            "podDisruptionBudget.enabled=true",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServerCIDRs={10.96.0.1/32}",
            "rbac.gatewayAPI=true",
            "rbac.istio=true",
            f"jobs.namespaces={{{ns},{other}}}",
            "networkPolicy.ingressFrom[0].podSelector.matchLabels.app=prom",
        ],
    }


@pytest.fixture
def other_namespace(kube: KubeEnv) -> Iterator[str]:
    name = kube.create_namespace("t2")
    yield name
    kube.delete_namespace(name)


@pytest.mark.parametrize("values", ["default", "namespaced", "everything"])
def test_rendered_chart_is_valid_for_kubeconform(values: str, schema_dir: Path) -> None:
    text = render(*value_sets("ml", "ml-b")[values], include_crds=True)
    # The API server serves every kind the chart renders except the prometheus-operator's
    # ServiceMonitor (its CRD cannot be fetched here); it alone is skipped, and checked field by field
    # in test_chart_render.py.
    report = kubeconform(text, schema_dir, "-skip", "ServiceMonitor")
    summary = report["summary"]
    assert summary["invalid"] == 0 and summary["errors"] == 0
    assert summary["skipped"] == (1 if values == "everything" else 0)
    assert summary["valid"] == len(docs(text)) - summary["skipped"]


def test_kubeconform_schemas_catch_mistakes(schema_dir: Path) -> None:
    """The generated schemas are strict: a misspelt field or a wrong type fails."""
    objs = docs(render())
    dep = by_kind(objs, "Deployment")[0]
    dep["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(AssertionError, match="securityContxt"):
        kubeconform(yaml.safe_dump(dep), schema_dir)
    md = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
    md["spec"]["serving"]["replicas"] = "four"
    with pytest.raises(AssertionError, match="replicas"):
        kubeconform(yaml.safe_dump(md), schema_dir)


@pytest.mark.parametrize("values", ["default", "namespaced", "everything"])
def test_rendered_chart_is_accepted_by_the_api_server(
    values: str, kube: KubeEnv, crd: str, namespace: str, other_namespace: str
) -> None:
    text = render(
        *value_sets(namespace, other_namespace)[values], namespace=namespace, release=f"dry-{values}"
    )
    objs = [o for o in docs(text) if o["kind"] != "ServiceMonitor"]  # no such kind on this server
    r = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objs))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("(server dry run)") == len(objs), r.stdout


# -- helm install, and the operator it installs at work ------------------------------------------------
#
# kwok stands in for the kubelet of the installed operator pod; the operator itself runs here as a local
# process authenticated with a TokenRequest token of the chart's ServiceAccount and the env of the
# chart's Deployment: what it manages to do, the chart's RBAC allows.


def helm_env(kube: KubeEnv, tmp: Path) -> dict[str, str]:
    env = kube.env()
    env.update(
        HELM_CACHE_HOME=str(tmp / "helm-cache"),
        HELM_CONFIG_HOME=str(tmp / "helm-config"),
        HELM_DATA_HOME=str(tmp / "helm-data"),
    )
    return env


@pytest.fixture
def installed(kube: KubeEnv, crd: str, namespace: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Yields an installer; everything installed is uninstalled after."""
    releases: list[tuple[str, str]] = []
    env = helm_env(kube, tmp_path)

    def install(release: str, *values: str) -> subprocess.CompletedProcess[str]:
        args = ["install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "180s"]
        for v in values:
            args += ["--set", v]
        releases.append((release, namespace))
        return helm(*args, env=env, timeout=240)

    yield {"install": install, "env": env}
    for release, ns in releases:
        helm("uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s", env=env, check=False)


def apply_example(kube: KubeEnv, name: str, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    kube.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name), check=True)
    return obj


def md_status(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    out = kube.kubectl("get", "modeldeployment", name, "-n", namespace, "-o", "json", check=True).stdout
    status: dict[str, Any] = json.loads(out).get("status") or {}
    return status


def wait_reconciled(
    kube: KubeEnv, namespace: str, name: str, log: Path, timeout: float = 90
) -> dict[str, Any]:
    def reconciled() -> dict[str, Any] | None:
        st = md_status(kube, namespace, name)
        return st if st.get("phase") and st.get("observedGeneration") else None

    try:
        result: dict[str, Any] = wait_for(
            f"the operator to reconcile {namespace}/{name}", reconciled, timeout
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\noperator log:\n{tail(log, 40)}") from None
    return result


def test_helm_install_cluster_wide_then_the_operator_reconciles(
    kube: KubeEnv, namespace: str, installed: dict[str, Any], tmp_path: Path
) -> None:
    require_harness_nodes(kube.external)
    # The release namespace enforces the "restricted" Pod Security Standard: the operator pod is only
    # created (and the Deployment only becomes available) if it meets it.
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", check=True)
    # Cluster-wide, on a control plane other tests share: the shard selector keeps this operator to
    # the objects labelled for it (and shows the selector at work: an unlabelled one is left alone).
    shard = f"mlrollout.io/shard={namespace}"
    installed["install"]("mlr", f"jobs.namespaces={{{namespace}}}", f"shardSelector={shard}")
    dep = kube.get_json("deployment", "mlr-mlrollout", "-n", namespace)
    assert dep["status"].get("readyReplicas") == 1
    cfg = service_account_kubeconfig(
        kube.kubeconfig, namespace, "mlr-mlrollout", tmp_path / "sa.kubeconfig", kube.bin_dir / "kubectl"
    )
    with local_operator(cfg, dep, tmp_path) as op:
        mine: dict[str, Any] = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
        name = mine["metadata"]["name"]
        key, value = shard.split("=")
        mine["metadata"].setdefault("labels", {})[key] = value
        other = dict(mine, metadata={"name": "not-my-shard"})
        for obj in (other, mine):
            kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=True)
        status = wait_reconciled(kube, namespace, name, op.log)
        assert status["observedGeneration"] >= 1
        assert md_status(kube, namespace, "not-my-shard") == {}
    log = op.log.read_text()
    assert not rbac_denials(log), tail(op.log, 40)


def can_i(kube: KubeEnv, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={sa}", *([f"--subresource={sub}"] if sub else [])]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    r = kube.kubectl(*args)
    assert r.stdout.strip() in ("yes", "no"), r.stderr
    return r.stdout.strip() == "yes"


def test_helm_install_namespaced_watches_only_its_namespaces(
    kube: KubeEnv, namespace: str, other_namespace: str, installed: dict[str, Any], tmp_path: Path
) -> None:
    require_harness_nodes(kube.external)
    unwatched = kube.create_namespace("t3")
    try:
        installed["install"]("mlr", f"watchNamespaces={{{other_namespace}}}")
        sa = f"system:serviceaccount:{namespace}:mlr-mlrollout"
        # What the operator may do, and where.
        assert can_i(kube, sa, "patch", "modeldeployments.mlrollout.io/status", other_namespace)
        assert can_i(kube, sa, "create", "deployments.apps", other_namespace)
        assert can_i(kube, sa, "delete", "cronjobs.batch", other_namespace)
        assert can_i(kube, sa, "list", "customresourcedefinitions.apiextensions.k8s.io", None)
        assert not can_i(kube, sa, "list", "modeldeployments.mlrollout.io", unwatched)
        assert not can_i(kube, sa, "list", "modeldeployments.mlrollout.io", None)
        assert can_i(kube, sa, "list", "namespaces", None)  # read-only, for Kopf's namespace observer
        assert not can_i(kube, sa, "get", "secrets", other_namespace)
        assert not can_i(kube, sa, "delete", "pods", other_namespace)
        assert not can_i(kube, sa, "create", "customresourcedefinitions.apiextensions.k8s.io", None)
        assert not can_i(kube, sa, "create", "rolebindings.rbac.authorization.k8s.io", other_namespace)

        dep = kube.get_json("deployment", "mlr-mlrollout", "-n", namespace)
        cfg = service_account_kubeconfig(
            kube.kubeconfig, namespace, "mlr-mlrollout", tmp_path / "sa.kubeconfig", kube.bin_dir / "kubectl"
        )
        with local_operator(cfg, dep, tmp_path) as op:
            watched = apply_example(kube, "blue-green.yaml", other_namespace)["metadata"]["name"]
            ignored = apply_example(kube, "blue-green.yaml", unwatched)["metadata"]["name"]
            wait_reconciled(kube, other_namespace, watched, op.log)
            assert md_status(kube, unwatched, ignored) == {}
        log = op.log.read_text()
        assert not rbac_denials(log), tail(op.log, 40)
    finally:
        kube.delete_namespace(unwatched)


def test_job_service_account_may_patch_status_only(
    kube: KubeEnv, crd: str, namespace: str, installed: dict[str, Any], tmp_path: Path
) -> None:
    """Real API calls with a TokenRequest token of the Jobs' ServiceAccount."""
    installed["install"]("mlr", f"jobs.namespaces={{{namespace}}}", "replicaCount=0")
    name = apply_example(kube, "shadow.yaml", namespace)["metadata"]["name"]
    cfg = service_account_kubeconfig(
        kube.kubeconfig, namespace, "mlrollout-job", tmp_path / "job.kubeconfig", kube.bin_dir / "kubectl"
    )
    job = KubeEnv(kubeconfig=str(cfg), bin_dir=kube.bin_dir)
    patch = json.dumps({"status": {"monitoring": {"lastRun": "2025-01-01T00:00:00Z"}}})
    r = job.kubectl(
        "patch", "modeldeployment", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
    )
    assert r.returncode == 0, r.stderr
    assert job.kubectl("get", "modeldeployment", name, "-n", namespace).returncode == 0
    denied = [
        ("patch", "modeldeployment", name, "--type=merge", "-p", '{"spec":{"serving":{"replicas":9}}}'),
        ("delete", "modeldeployment", name),
        ("get", "secrets"),
        ("get", "pods"),
        ("create", "configmap", f"x-{uuid.uuid4().hex[:6]}"),
    ]
    for args in denied:
        r = job.kubectl(*args, "-n", namespace)
        assert r.returncode != 0 and "forbidden" in r.stderr.lower(), (args, r.stdout, r.stderr)

    # RBAC allows the status subresource; the chart's ValidatingAdmissionPolicy keeps it to monitoring.
    def patch_status(field: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return job.kubectl(
            "patch", "modeldeployment", name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", f'{{"status":{field}}}', *extra,
        )  # fmt: skip

    # The API server loads a new policy asynchronously (seconds under load): wait, with a dry run,
    # until it is enforced, then make the real attempts.
    wait_for(
        "the Jobs status policy to be enforced",
        lambda: "status.monitoring only" in patch_status('{"phase":"Healthy"}', "--dry-run=server").stderr,
    )
    for field in ('{"phase":"Healthy"}', '{"stableVersion":"99"}', '{"monitoring":{},"message":"x"}'):
        r = patch_status(field)
        assert r.returncode != 0 and "status.monitoring only" in r.stderr, (field, r.stdout, r.stderr)


def test_helm_installed_pod_runs_the_operator(
    kube: KubeEnv, namespace: str, installed: dict[str, Any]
) -> None:
    """With an image under the harness's runner registry, the installed pod itself runs the operator: its
    in-cluster credentials are the chart ServiceAccount's projected token, and `helm install --wait`
    returns only once the runner's readiness probe got 200 from the operator's /healthz."""
    require_harness_nodes(kube.external)
    installed["install"](
        "run", f"watchNamespaces={{{namespace}}}", "image.repository=mlrollout.local/mlrollout-operator",
        "image.tag=test", "readinessProbe.initialDelaySeconds=1", "readinessProbe.periodSeconds=1",
    )  # fmt: skip
    pod = kube.get_json("pods", "-n", namespace, "-l", "app.kubernetes.io/instance=run")["items"][0]
    assert pod["spec"]["serviceAccountName"] == "run-mlrollout"
    assert all(c["status"] == "True" for c in pod["status"]["conditions"] if c["type"] == "Ready")
    name = apply_example(kube, "ab-test.yaml", namespace)["metadata"]["name"]

    def reconciled() -> dict[str, Any] | None:
        st = md_status(kube, namespace, name)
        return st if st.get("phase") and st.get("observedGeneration") else None

    wait_for(f"the installed operator to reconcile {namespace}/{name}", reconciled, timeout=90)
