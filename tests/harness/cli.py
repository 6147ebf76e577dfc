"""`make cluster-up` / `make cluster-down`: the test control plane for a person, in .cluster/."""

from __future__ import annotations

import json
import os
import sys

from harness import podnet
from harness.controlplane import REPO, ControlPlane
from harness.gateway import Gateway
from harness.podnet import PodNetwork
from harness.procs import HarnessError, Proc, pid_alive, stop_pid
from harness.services import MLflowServer, Prometheus

STATE = REPO / ".cluster"


def up() -> None:
    if (STATE / "pids").exists() or (STATE / "network.json").exists():
        down(quiet=True)  # a stale state dir from an earlier run: stop what is left of it first
    net = PodNetwork.create()
    (STATE).mkdir(parents=True, exist_ok=True)
    (STATE / "network.json").write_text(json.dumps({"prefix": net.prefix}))
    cp = ControlPlane(STATE, network=net)
    try:
        cp.start()
        gateway = Gateway(cp).start()
        prom = Prometheus(STATE / "prometheus", host=net.host_ip).start()
        assert prom.proc is not None
        cp.procs.append(prom.proc)  # owned from here on: a later failure stops it too
        mlflow = MLflowServer(STATE / "mlflow", host=net.host_ip).start()
        assert mlflow.proc is not None
        cp.procs.append(mlflow.proc)
        runner = Proc(
            "pod-runner",
            [
                sys.executable,
                "-m",
                "harness.runner",
                str(cp.kubeconfig),
                str(STATE / "pods"),
                str(cp.api_port),
                str(prom.runner_targets),
            ],
            cp.logs / "pod-runner.log",
            env=dict(os.environ, PYTHONPATH=str(REPO / "tests"), MLROLLOUT_POD_NETWORK=net.prefix),
        ).start()
        cp.procs.append(runner)
        # This process exits now: the network belongs to the long-lived runner from here on.
        net.adopt(runner.pid)
    except BaseException:
        cp.stop()
        net.destroy()
        (STATE / "network.json").unlink(missing_ok=True)
        raise
    cp.write_pids()
    L = net.layout
    (STATE / "endpoints.json").write_text(
        json.dumps({"prometheus": prom.url, "mlflow": mlflow.uri, "gateway": gateway.url, "dns": L.dns_ip})
    )
    print(f"""control plane up (Kubernetes {cp.bins.name.removeprefix("bin-")}), logs in {cp.logs}
  export KUBECONFIG={cp.kubeconfig}
  export PATH={cp.bins}:$PATH      # kubectl, helm built for it
  kubectl get nodes
Prometheus: {prom.url}   MLflow: {mlflow.uri}   (same URLs from the host and from pods)
Pods whose image starts with mlrollout.local/ run as local processes, each in its own network
namespace (pod range {L.pod_cidr}); kwok fakes all others (their addresses answer nothing).
Services (kube-proxy, range {L.service_cidr}) are routed from this host:
  kubectl get service NAME -n NS        # then: curl http://CLUSTER-IP:PORT/
  DNS: CoreDNS at {L.dns_ip} serves cluster.local (pods use it; from the host:
       dig @{L.dns_ip} NAME.NS.svc.cluster.local)
Gateway API (Traefik, standard channel CRDs; Istio CRDs stored only, not routed):
  Gateway {gateway.parent_ref()["namespace"]}/{gateway.parent_ref()["name"]} at {gateway.url}
  attach an HTTPRoute with parentRefs: [{{name: mlrollout, namespace: gateway-system}}] and
  hostnames: [demo.example.test], then: curl -H 'Host: demo.example.test' {gateway.url}/
Stop it with: make cluster-down""")


def down(quiet: bool = False) -> None:
    pids_file, net_file = STATE / "pids", STATE / "network.json"
    if not pids_file.exists() and not net_file.exists():
        if not quiet:
            print("no control plane is running from .cluster/")
        return
    if pids_file.exists():
        for name, pid in reversed(list(json.loads(pids_file.read_text()).items())):
            if pid_alive(pid):
                stop_pid(pid)
                if not quiet:
                    print(f"stopped {name} (pid {pid})")
        pids_file.unlink()
    if net_file.exists():
        prefix = json.loads(net_file.read_text())["prefix"]
        podnet.remove(prefix)
        if not quiet:
            print(f"removed pod network {prefix}")
        net_file.unlink()


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        {"up": up, "down": down}[cmd]()
    except KeyError:
        sys.exit("usage: python -m harness.cli up|down")
    except HarnessError as e:
        sys.exit(f"cluster-up failed: {e}")


if __name__ == "__main__":
    main()
