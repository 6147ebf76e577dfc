"""Proof that the test cluster routes traffic as a cluster does: Services through kube-proxy,
readiness respected, cluster DNS from inside a pod."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from harness import podnet
from harness.kube import KubeEnv
from harness.podnet import PodNetwork
from harness.procs import eventually
from harness.traffic import cluster_ip, echo_deployment, get, ready_pods, service, within_binomial

pytestmark = pytest.mark.integration


@pytest.fixture
def echo(kube: KubeEnv, namespace: str) -> Iterator[str]:
    """Deployments a (1 replica) and b (3 replicas) behind one Service `echo`; returns its URL."""
    if kube.external:
        pytest.skip("executed echo pods need the harness's pod runner")
    kube.apply(echo_deployment("a", 1, {"app": "echo"}), namespace)
    kube.apply(echo_deployment("b", 3, {"app": "echo"}), namespace)
    kube.apply(service("echo", {"app": "echo"}), namespace)
    eventually(
        lambda: len(ready_pods(kube, namespace, "app=echo")) == 4, timeout=120, what="4 ready echo pods"
    )
    yield f"http://{cluster_ip(kube, namespace, 'echo')}"


def test_pods_get_addresses_of_the_pod_network_and_are_endpoints(
    kube: KubeEnv, namespace: str, echo: str
) -> None:
    pods = ready_pods(kube, namespace, "app=echo")
    ips = {p.status.pod_ip for p in pods}
    assert all(ip.startswith("198.18.") for ip in ips), ips

    def slice_ips() -> set[str] | None:
        disc: Any = client.DiscoveryV1Api(kube.api_client())
        slices = disc.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=echo"
        ).items
        got = {a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses}
        return got if got == ips else None

    eventually(slice_ips, what="the EndpointSlice to list every ready pod")


def test_service_reaches_every_ready_pod_and_splits_by_replicas(
    kube: KubeEnv, namespace: str, echo: str
) -> None:
    names = {p.metadata.name for p in ready_pods(kube, namespace, "app=echo")}
    seen: set[str] = set()

    def all_seen() -> bool:
        try:  # until kube-proxy has programmed the new Service, its address is unroutable
            seen.add(json.loads(get(echo))["pod"])
        except OSError:
            return False
        return seen == names

    eventually(all_seen, timeout=60, interval=0.02, what=f"requests to reach all of {sorted(names)}")
    n = 400
    tracks = Counter(json.loads(get(echo))["track"] for _ in range(n))
    assert tracks["a"] + tracks["b"] == n
    # kube-proxy picks an endpoint uniformly per connection: 1 pod of 4 takes ~25 %.
    assert within_binomial(tracks["a"], n, 0.25), tracks


def test_a_pod_that_turns_unready_stops_getting_traffic(kube: KubeEnv, namespace: str, echo: str) -> None:
    victim = ready_pods(kube, namespace, "echo=b")[0]
    urllib.request.urlopen(
        urllib.request.Request(f"http://{victim.status.pod_ip}:8080/unready", data=b"", method="POST"),
        timeout=5,
    ).close()
    eventually(
        lambda: (
            victim.metadata.name not in {p.metadata.name for p in ready_pods(kube, namespace, "app=echo")}
        ),
        what="the pod to be reported unready",
    )

    def batch_avoids_victim() -> bool:
        return all(json.loads(get(echo))["pod"] != victim.metadata.name for _ in range(40))

    eventually(batch_avoids_victim, timeout=30, what="kube-proxy to drop the unready endpoint")
    hits = Counter(json.loads(get(echo))["pod"] for _ in range(200))
    assert victim.metadata.name not in hits
    assert len(hits) == 3, hits  # the three others still serve


def test_a_pod_resolves_services_by_dns_name_and_calls_them(kube: KubeEnv, namespace: str, echo: str) -> None:
    caller = ready_pods(kube, namespace, "echo=a")[0].status.pod_ip
    svc_ip = cluster_ip(kube, namespace, "echo")
    for name in ("echo", f"echo.{namespace}", f"echo.{namespace}.svc", f"echo.{namespace}.svc.cluster.local"):
        q = urllib.parse.urlencode({"name": name})
        assert get(f"http://{caller}:8080/resolve?{q}") == svc_ip, name
    kubernetes_ip = cluster_ip(kube, "default", "kubernetes")
    assert get(f"http://{caller}:8080/resolve?name=kubernetes.default") == kubernetes_ip
    # And calls it by name, through the Service, from inside the pod.
    q = urllib.parse.urlencode({"url": f"http://echo.{namespace}/"})
    names = {p.metadata.name for p in ready_pods(kube, namespace, "app=echo")}

    def reachable() -> bool:
        try:
            return bool(json.loads(get(f"http://{caller}:8080/call?{q}"))["pod"] in names)
        except urllib.error.HTTPError:  # until kube-proxy has programmed the Service's endpoints
            return False

    eventually(reachable, what="the Service to answer by name from inside a pod")
    assert all(json.loads(get(f"http://{caller}:8080/call?{q}"))["pod"] in names for _ in range(10))
    # A Service whose only endpoint is the caller itself: the request leaves the pod and comes back
    # across the bridge (hairpin), as on a kubelet's bridge.
    kube.apply(service("echo-a", {"echo": "a"}), namespace)
    q = urllib.parse.urlencode({"url": "http://echo-a/"})

    def calls_itself() -> bool:
        try:
            return bool(json.loads(get(f"http://{caller}:8080/call?{q}"))["track"] == "a")
        except urllib.error.HTTPError:  # until kube-proxy has programmed the new Service
            return False

    eventually(calls_itself, what="a pod to reach itself through its Service")
    # Names outside the cluster do not resolve: the pods have no way out.
    out = urllib.parse.urlencode({"name": "example.com"})
    with pytest.raises(urllib.error.HTTPError):
        get(f"http://{caller}:8080/resolve?{out}")


def test_a_deleted_pod_leaves_no_network_namespace(
    kube: KubeEnv, namespace: str, pod_network: PodNetwork | None
) -> None:
    if pod_network is None:
        pytest.skip("the harness's pod network only")
    kube.apply(echo_deployment("solo", 1, {"app": "solo"}), namespace)
    pod = eventually(lambda: ready_pods(kube, namespace, "app=solo"), what="a ready pod")[0]
    index = int(ipaddress.ip_address(pod.status.pod_ip)) - int(
        ipaddress.ip_address(pod_network.layout.pod_ip(0))
    )
    netns = f"{pod_network.prefix}-p{index}"
    assert netns in podnet._netns_names()
    kube.kubectl("delete", "deployment", "solo", "-n", namespace, "--wait=true", check=True)
    eventually(lambda: netns not in podnet._netns_names(), what=f"{netns} to be removed")
