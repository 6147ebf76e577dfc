"""A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok (fake nodes), started from the binaries build-binaries.sh made.

With a PodNetwork (the normal case) the API server listens on the network's host-side address,
where executed pods reach it too, and Services get addresses from the network's service range;
without one, everything stays on loopback (no data plane)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.certs import Certs, make_certs
from harness.dataplane import start_coredns, start_kube_proxy
from harness.podnet import PodNetwork
from harness.procs import HarnessError, Proc, free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
K8S_VERSION = "v1.34.4"
RUNNER_REGISTRY = "mlrollout.local"  # pods whose image lives here are executed by the pod runner
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    "kube-proxy",
    "coredns",
)
ADMIN_TOKEN_FILE = "admin.token"
FAKE_NODES = ("kwok-node-0", "kwok-node-1")


def bin_dir() -> Path:
    """Where the binaries are: MLROLLOUT_BIN_DIR, else build (or reuse) them with build-binaries.sh."""
    env = os.environ.get("MLROLLOUT_BIN_DIR")
    if env and all((Path(env) / b).exists() for b in BINARIES):
        return Path(env)
    proc = subprocess.run(["bash", str(HERE / "build-binaries.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"building the control-plane binaries failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class ControlPlane:
    """Start with `start()`, stop with `stop()`; `kubeconfig` is usable as soon as start() returns."""

    workdir: Path
    bins: Path = field(default_factory=bin_dir)
    procs: list[Proc] = field(default_factory=list)
    api_port: int = 0
    network: PodNetwork | None = None  # owned by the caller, who destroys it after stop()
    # Service range without a pod network: a /24 holds 254 Services, too few for bench-operator.
    loopback_service_cidr: str = "10.0.0.0/24"
    # API Priority and Fairness (off by default: it costs CPU and no test but the 429 one needs it).
    priority_and_fairness: bool = False

    @property
    def host(self) -> str:
        """The address the API server (and other host services pods use) listens on."""
        return self.network.host_ip if self.network else "127.0.0.1"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def start(self) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            ips = (self.host, self.network.layout.kubernetes_ip) if self.network else ("10.0.0.1",)
            certs = make_certs(self.workdir / "pki", ips)
            token = base64.b32encode(os.urandom(20)).decode().lower()
            (self.workdir / ADMIN_TOKEN_FILE).write_text(token)
            self._start_etcd()
            self._start_apiserver(certs, token)
            self._write_kubeconfig(certs, token)
            dns_ready = start_coredns(self) if self.network is not None else None
            self._start_controllers(certs)
            self._start_kwok()
            self._wait_cluster_usable()
            if dns_ready is not None:
                start_kube_proxy(self)  # after the nodes exist: it takes its address from one
                dns_ready()
        except BaseException:
            self.stop()
            raise
        self.write_pids()
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        (self.workdir / "pids").unlink(missing_ok=True)

    def write_pids(self) -> None:
        (self.workdir / "pids").write_text(json.dumps({p.name: p.pid for p in self.procs}))

    # -- components -----------------------------------------------------------------------------

    def _proc(self, name: str, *argv: str) -> Proc:
        p = Proc(name, argv, self.logs / f"{name}.log").start()
        self.procs.append(p)
        return p

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        data = self.workdir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        p = self._proc(
            "etcd",
            str(self.bins / "etcd"),
            f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",  # a throwaway store: durability buys nothing in tests
            "--log-level=warn",
        )
        self.etcd_url = f"http://127.0.0.1:{client}"
        p.wait_ready(lambda: _http_ok(f"{self.etcd_url}/health"), timeout=30)

    def _start_apiserver(self, c: Certs, token: str) -> None:
        self.api_port = free_port(self.host)
        services = self.network.layout.service_cidr if self.network else self.loopback_service_cidr
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{token},admin,admin,"system:masters"\n')
        p = self._proc(
            "kube-apiserver",
            str(self.bins / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.api_port}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            f"--tls-cert-file={c.server_crt}",
            f"--tls-private-key-file={c.server_key}",
            f"--client-ca-file={c.ca_crt}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={c.sa_pub}",
            f"--service-account-signing-key-file={c.sa_key}",
            f"--service-cluster-ip-range={services}",
            "--allow-privileged=true",
            f"--enable-priority-and-fairness={str(self.priority_and_fairness).lower()}",
            "--profiling=false",
        )
        url = f"https://{self.host}:{self.api_port}/readyz"
        p.wait_ready(lambda: _http_ok(url, token=token, ca=c.ca_crt), timeout=90)

    def _write_kubeconfig(self, c: Certs, token: str) -> None:
        ca = base64.b64encode(c.ca_crt.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mlrollout-test",
                    "cluster": {
                        "server": f"https://{self.host}:{self.api_port}",
                        "certificate-authority-data": ca,
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [
                {"name": "mlrollout-test", "context": {"cluster": "mlrollout-test", "user": "admin"}}
            ],
            "current-context": "mlrollout-test",
        }
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self, c: Certs) -> None:
        kcm_port, sched_port = free_port(), free_port()
        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
        ]
        kcm = self._proc(
            "kube-controller-manager",
            str(self.bins / "kube-controller-manager"),
            *common,
            f"--secure-port={kcm_port}",
            f"--service-account-private-key-file={c.sa_key}",
            f"--root-ca-file={c.ca_crt}",
            "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            "--concurrent-job-syncs=10",
        )
        sched = self._proc(
            "kube-scheduler",
            str(self.bins / "kube-scheduler"),
            *common,
            f"--secure-port={sched_port}",
        )
        kcm.wait_ready(lambda: _http_ok(f"https://127.0.0.1:{kcm_port}/healthz"), timeout=60)
        sched.wait_ready(lambda: _http_ok(f"https://127.0.0.1:{sched_port}/healthz"), timeout=60)

    def _start_kwok(self) -> None:
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text((HERE / "kwok-stages.yaml").read_text().replace("RUNNER_REGISTRY", RUNNER_REGISTRY))
        port = free_port()
        # kwok's fake pods and nodes get addresses of this run's range that nothing answers at.
        cidr = self.network.layout.fake_pod_cidr if self.network else "10.244.0.0/16"
        node_ip = self.network.layout.node_ip if self.network else "10.96.0.1"
        p = self._proc(
            "kwok",
            str(self.bins / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=true",
            f"--server-address=127.0.0.1:{port}",
            f"--cidr={cidr}",
            f"--node-ip={node_ip}",
            "--node-lease-duration-seconds=40",  # kwok renews leases: nodes stay Ready
        )
        p.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=30)
        for name in FAKE_NODES:
            self.kubectl_apply(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "type": "kwok",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                        },
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                    },
                }
            )

    def _wait_cluster_usable(self, timeout: float = 60) -> None:
        """The controllers really act: nodes Ready, the default ServiceAccount made."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if not p.alive():
                    raise HarnessError(f"{p.name} died during start-up; log {p.log}")
            nodes = self.kubectl(
                "get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"
            )
            taints = self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].spec.taints}")
            sa = self.kubectl("get", "serviceaccount", "default", "-n", "default", "-o", "name")
            # The node lifecycle controller lifts the not-ready taint once kwok reports Ready.
            if (
                nodes.stdout.split() == ["True"] * len(FAKE_NODES)
                and not taints.stdout.strip()
                and sa.returncode == 0
            ):
                return
            last = f"nodes ready: {nodes.stdout!r}; default SA: {sa.stdout.strip() or sa.stderr.strip()}"
            time.sleep(0.5)
        raise HarnessError(
            f"control plane up but not usable after {timeout:.0f}s: {last}; logs in {self.logs}"
        )

    # -- helpers --------------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bins / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )

    def kubectl_apply(self, obj: dict[str, object]) -> None:
        r = self.kubectl("apply", "-f", "-", input=json.dumps(obj))
        if r.returncode != 0:
            raise HarnessError(f"kubectl apply failed: {r.stderr}")


def _http_ok(url: str, token: str | None = None, ca: Path | None = None) -> bool:
    ctx = None
    if url.startswith("https"):
        ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
        return bool(r.status == 200)
