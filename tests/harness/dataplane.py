"""The cluster's data plane inside the run's node netns: kube-proxy (Services) and CoreDNS.

Both run in the node network namespace (harness.podnet), so kube-proxy's iptables rules touch
only this run's traffic and vanish with the namespace, and their ports never clash with another
run's. CoreDNS serves cluster.local from the API server behind the `kube-dns` Service, as in a
kubeadm cluster; executed pods get a resolv.conf pointing at that Service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.procs import Proc

if TYPE_CHECKING:
    from harness.controlplane import ControlPlane

CLUSTER_DOMAIN = "cluster.local"
PROXY_NODE = "kwok-node-0"  # kube-proxy needs a Node for its address; any fake node serves


def start_kube_proxy(cp: ControlPlane) -> None:
    assert cp.network is not None
    L = cp.network.layout
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cp.kubeconfig)},
        "hostnameOverride": PROXY_NODE,
        "mode": "iptables",
        "clusterCIDR": L.pod_cidr,
        "bindAddress": L.node_ip,
        "healthzBindAddress": f"{L.node_ip}:10256",
        "metricsBindAddress": f"{L.node_ip}:10249",
        "nodePortAddresses": [f"{L.node_ip}/32"],
        # The netns has no writable conntrack sysctls; the host's defaults are enough here.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s", "localhostNodePorts": False},
    }
    path = cp.workdir / "kube-proxy.json"
    path.write_text(json.dumps(cfg))
    p = cp._proc("kube-proxy", *cp.network.in_node([str(cp.bins / "kube-proxy"), f"--config={path}"]))
    # healthz answers 200 once the first full sync of the rules is done.
    from harness.controlplane import _http_ok

    p.wait_ready(lambda: _http_ok(f"http://{L.node_ip}:10256/healthz"), timeout=60)


def start_coredns(cp: ControlPlane) -> Callable[[], None]:
    """Starts CoreDNS; returns the wait for it (it syncs while the controllers start)."""
    assert cp.network is not None
    L = cp.network.layout
    corefile = cp.workdir / "Corefile"
    # No `forward`: names outside the cluster are not resolved (the pods have no way out).
    corefile.write_text(
        f""".:53 {{
    bind {L.node_ip}
    errors
    ready {L.node_ip}:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {cp.kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
    )
    p = cp._proc("coredns", *cp.network.in_node([str(cp.bins / "coredns"), "-conf", str(corefile)]))
    return lambda: _coredns_ready(cp, p)


def _coredns_ready(cp: ControlPlane, p: Proc) -> None:
    from harness.controlplane import _http_ok

    assert cp.network is not None
    L = cp.network.layout
    p.wait_ready(lambda: _http_ok(f"http://{L.node_ip}:8181/ready"), timeout=60)
    # The kube-dns Service at the conventional 10th address, its endpoint set by hand: CoreDNS
    # is a process of the node here, not a pod.
    cp.kubectl_apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": L.dns_ip,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        }
    )
    cp.kubectl_apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "harness.mlrollout.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [L.node_ip], "conditions": {"ready": True}}],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        }
    )


def resolv_conf(namespace: str, nameserver: str) -> str:
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:5\n"


def write_resolv_conf(d: Path, namespace: str, nameserver: str) -> Path:
    p = d / "resolv.conf"
    p.write_text(resolv_conf(namespace, nameserver))
    return p
