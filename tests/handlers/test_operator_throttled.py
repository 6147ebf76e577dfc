"""An API server that answers 429 (issue 14, bad input): API Priority and Fairness on a control plane
of this module's own sends every request of the operator's ServiceAccount to a priority level with
no seats of its own that rejects instead of queuing. Such a level still serves one request when
nothing else runs, so another client of the same account keeps one in flight all the time (a LIST
at a resourceVersion far ahead, which the API server holds for 3 s before answering 504). Every
request of the operator is then answered 429 with a Retry-After: it backs off (at least Retry-After,
growing), says why in its log and /metrics, changes nothing meanwhile, and carries the change out
once the API server serves it again."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_support import CRD_FILE, OperatorProcess, Registry, eventually, unique

from charts.chart_support import service_account_kubeconfig
from harness.controlplane import ControlPlane
from harness.kube import KubeEnv, external_kubeconfig
from harness.procs import tail
from mlrollout.api import names
from mlrollout.handlers import metric_names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: kwok makes the pods ready
LEVEL = "mlrollout-throttled"


@pytest.fixture(scope="module")
def apf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    if external_kubeconfig():
        pytest.skip("needs a control plane of its own with API Priority and Fairness")
    work = tmp_path_factory.mktemp("apf")
    cp = ControlPlane(work / "cluster", priority_and_fairness=True).start()
    try:
        kube = KubeEnv(kubeconfig=str(cp.kubeconfig), bin_dir=cp.bins, control_plane=cp)
        kube.kubectl("apply", "--server-side", "-f", str(CRD_FILE), check=True)
        kube.wait_established("modeldeployments.mlrollout.io")
        yield kube
    finally:
        cp.stop()


def throttle(kube: KubeEnv, namespace: str, account: str) -> None:
    """Every request of the account to a level with no seats of its own and none borrowed: rejected."""
    kube.apply(
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": {"name": LEVEL},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 0,
                    "lendablePercent": 0,
                    "borrowingLimitPercent": 0,
                    "limitResponse": {"type": "Reject"},
                },
            },
        }
    )
    kube.apply(
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": LEVEL},
            "spec": {
                "priorityLevelConfiguration": {"name": LEVEL},
                "matchingPrecedence": 100,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "serviceAccount": {"name": account, "namespace": namespace},
                            }
                        ],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                    }
                ],
            },
        }
    )


def spec(model: str, uri: str, replicas: int) -> dict[str, Any]:
    return {
        "model": {"name": model, "version": "1"},
        "registry": {"trackingUri": uri},
        "serving": {"image": IMAGE, "replicas": replicas},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    }


def serving_replicas(apps: Any, namespace: str, md: str) -> int | None:
    try:
        found = apps.read_namespaced_deployment(names.serving_name(md, names.TRACK_STABLE), namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return int(found.spec.replicas)


backoffs = re.compile(r"API error 429 Too Many Requests.*backing off ([0-9.]+) s \(failure (\d+) in a row\)")


@contextlib.contextmanager
def busy(kubeconfig: Path, namespace: str, threads: int = 3) -> Iterator[None]:
    """Keeps a request of the account in flight: a LIST that waits for a resourceVersion that will
    not come (3 s each, overlapping)."""
    from kubernetes import config

    stop = threading.Event()

    def hold() -> None:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]
        while not stop.is_set():
            with contextlib.suppress(client.ApiException):
                core.list_namespaced_config_map(
                    namespace, resource_version=str(10**12), resource_version_match="NotOlderThan"
                )

    workers = [threading.Thread(target=hold, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    try:
        yield
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)


def refused(kubeconfig: Path, namespace: str) -> bool:
    from kubernetes import config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]
    for _ in range(20):
        try:
            core.list_namespaced_config_map(namespace)
        except client.ApiException as e:
            if e.status == 429:
                return True
            raise
    return False


def observed_generation(objects: Any, namespace: str, md: str) -> int | None:
    found = objects.get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, md)
    return (found.get("status") or {}).get("observedGeneration")


def test_a_throttled_operator_backs_off_says_why_and_carries_on(
    apf: KubeEnv, registry: Registry, tmp_path: Path
) -> None:
    namespace = apf.create_namespace()
    account = "operator"
    apf.kubectl("create", "serviceaccount", account, "-n", namespace, check=True)
    apf.kubectl(
        "create",
        "clusterrolebinding",
        f"{namespace}-operator",
        "--clusterrole=cluster-admin",  # RBAC is not what this test is about: the chart test checks it
        f"--serviceaccount={namespace}:{account}",
        check=True,
    )
    as_operator = service_account_kubeconfig(
        apf.kubeconfig, namespace, account, tmp_path / "operator.kubeconfig", apf.bin_dir / "kubectl"
    )
    sa = KubeEnv(kubeconfig=str(as_operator), bin_dir=apf.bin_dir)
    model = registry.register(unique("throttled"))
    objects = client.CustomObjectsApi(apf.api_client())
    apps = client.AppsV1Api(apf.api_client())
    log = tmp_path / "operator.log"
    # Production-like timers: with the tests' 1 s heartbeat every wait would be cut to a second.
    slow = {"MLROLLOUT_HEARTBEAT_SECONDS": "300", "MLROLLOUT_REGISTRY_RESYNC_SECONDS": "300"}
    op = OperatorProcess(sa, namespace, log, extra_env=slow).start()
    try:
        body = {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": "md"}}
        objects.create_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, body | {"spec": spec(model, registry.uri, 1)}
        )
        eventually(lambda: serving_replicas(apps, namespace, "md") == 1, 120, "the serving Deployment")

        throttle(apf, namespace, account)

        def third_failure() -> list[tuple[float, int]]:
            seen = [(float(d), int(n)) for d, n in backoffs.findall(log.read_text(errors="replace"))]
            return seen if any(n >= 3 for _, n in seen) else []

        with busy(as_operator, namespace):
            eventually(lambda: refused(as_operator, namespace), 60, "the API server refusing the account")
            # A change the operator must act on while its requests are refused.
            objects.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                "md",
                {"spec": {"serving": {"replicas": 2}}},
            )
            found = eventually(third_failure, 120, "three backoffs in a row on 429")
            assert op.metric(metric_names.API_BACKOFFS + "_total", status="429") >= 3
            # Never shorter than the server's Retry-After (2 or 3 s here), whatever the jitter.
            assert min(delay for delay, _ in found) >= 2.0, found
            assert serving_replicas(apps, namespace, "md") == 1, "acted while every request was refused"

        apf.kubectl("delete", "flowschema", LEVEL, check=True)
        eventually(lambda: serving_replicas(apps, namespace, "md") == 2, 180, "the change carried out after")
        eventually(lambda: observed_generation(objects, namespace, "md") == 2, 60, "the change recorded")
        before = len(backoffs.findall(log.read_text(errors="replace")))
        time.sleep(5)  # nothing refused any more: no new backoff
        assert len(backoffs.findall(log.read_text(errors="replace"))) == before
        assert not op.exited(), tail(log, 40)
    finally:
        op.stop()
        apf.kubectl("delete", "flowschema", LEVEL, "--ignore-not-found")
