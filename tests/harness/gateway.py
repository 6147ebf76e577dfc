"""A real Gateway API implementation for the test cluster: Traefik's kubernetesgateway provider.

The standard-channel CRDs come from the sigs.k8s.io/gateway-api module at the version Traefik
implements, Istio's CRDs from the istio.io/api module (applied so a VirtualService can be stored
and read back; Istio's routing itself is not run here). Traefik runs in the run's node netns and
listens on the node address, port 80: reachable from the host at `url` and from pods through the
`traefik` Service (http://traefik.gateway-system). Gateway `mlrollout` in `gateway-system`
accepts HTTPRoutes from every namespace.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.procs import HarnessError, Proc

if TYPE_CHECKING:
    from harness.controlplane import ControlPlane

NAMESPACE = "gateway-system"
GATEWAY = "mlrollout"
CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"
PORT = 80
PING_PORT = 9000


def crd_file(bins: Path, name: str) -> Path:
    p = bins / "crds" / f"{name}.yaml"
    if not p.exists():
        raise HarnessError(
            f"{p} is missing: run `make binaries` (tests/harness/build-binaries.sh {name}-crds)"
        )
    return p


@dataclass
class Gateway:
    cp: ControlPlane
    proc: Proc | None = None

    @property
    def address(self) -> str:
        assert self.cp.network is not None
        return self.cp.network.layout.node_ip

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def parent_ref(self) -> dict[str, str]:
        """What an HTTPRoute puts in spec.parentRefs to attach to this Gateway."""
        return {"name": GATEWAY, "namespace": NAMESPACE}

    def start(self) -> Gateway:
        cp = self.cp
        if cp.network is None:
            raise HarnessError("the Gateway needs the pod network (ControlPlane(network=...))")
        traefik = cp.bins / "traefik"
        if not traefik.exists():
            raise HarnessError(f"{traefik} is missing: run `make binaries` (build-binaries.sh traefik)")
        install_crds(cp)
        token = cp.workdir / "admin.token"
        node = self.address
        self.proc = cp._proc(
            "traefik",
            *cp.network.in_node(
                [
                    str(traefik),
                    f"--entrypoints.web.address={node}:{PORT}",
                    f"--entrypoints.ping.address={node}:{PING_PORT}",
                    "--ping=true",
                    "--ping.entrypoint=ping",
                    "--providers.kubernetesgateway=true",
                    f"--providers.kubernetesgateway.endpoint=https://{cp.host}:{cp.api_port}",
                    f"--providers.kubernetesgateway.token={token}",
                    f"--providers.kubernetesgateway.certauthfilepath={cp.workdir / 'pki' / 'ca.crt'}",
                    f"--providers.kubernetesgateway.statusaddress.ip={node}",
                    "--global.checknewversion=false",
                    "--global.sendanonymoususage=false",
                    "--log.level=INFO",
                ]
            ),
        )
        cp.write_pids()
        from harness.controlplane import _http_ok

        self.proc.wait_ready(lambda: _http_ok(f"http://{node}:{PING_PORT}/ping"), timeout=60)
        for obj in self._objects():
            cp.kubectl_apply(obj)
        self._wait_programmed()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def _objects(self) -> list[dict[str, Any]]:
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": CLASS},
                "spec": {"controllerName": CONTROLLER},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
                "spec": {
                    "gatewayClassName": CLASS,
                    "listeners": [
                        {
                            "name": "http",
                            "port": PORT,
                            "protocol": "HTTP",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }
                    ],
                },
            },
            # Pods reach the Gateway by name, as they would a cloud load balancer's Service.
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "traefik", "namespace": NAMESPACE},
                "spec": {"ports": [{"name": "http", "port": PORT, "targetPort": PORT}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "traefik-node",
                    "namespace": NAMESPACE,
                    "labels": {
                        "kubernetes.io/service-name": "traefik",
                        "endpointslice.kubernetes.io/managed-by": "harness.mlrollout.io",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.address], "conditions": {"ready": True}}],
                "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}],
            },
        ]

    def _wait_programmed(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            r = self.cp.kubectl("get", "gateway", GATEWAY, "-n", NAMESPACE, "-o", "json")
            if r.returncode == 0:
                conds = json.loads(r.stdout).get("status", {}).get("conditions", [])
                if any(c["type"] == "Programmed" and c["status"] == "True" for c in conds):
                    return
                last = json.dumps(conds)
            time.sleep(0.5)
        raise HarnessError(
            f"Gateway {NAMESPACE}/{GATEWAY} not Programmed by Traefik after {timeout:.0f}s "
            f"(conditions: {last}); log {self.cp.logs / 'traefik.log'}"
        )


def install_crds(cp: ControlPlane) -> None:
    """The Gateway API standard channel and Istio's CRDs, applied and Established."""
    for name in ("gateway-api", "istio"):
        r = cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_file(cp.bins, name)))
        if r.returncode != 0:
            raise HarnessError(f"applying the {name} CRDs failed: {r.stderr.strip()[-2000:]}")
    r = cp.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/httproutes.gateway.networking.k8s.io",
        "crd/gateways.gateway.networking.k8s.io",
        "crd/gatewayclasses.gateway.networking.k8s.io",
        "crd/virtualservices.networking.istio.io",
    )
    if r.returncode != 0:
        raise HarnessError(f"Gateway API / Istio CRDs not Established: {r.stderr.strip()}")


@dataclass(frozen=True)
class ExternalGateway:
    """A Gateway of an external cluster (MLROLLOUT_USE_KUBECONFIG=1), described by env vars."""

    url: str
    namespace: str
    name: str

    def parent_ref(self) -> dict[str, str]:
        return {"name": self.name, "namespace": self.namespace}
