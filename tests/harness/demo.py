"""`make demo`: a local control plane, the operator, and a ModelDeployment going through its life.

Everything is real: kube-apiserver/etcd/controllers, an MLflow tracking server holding a trained
scikit-learn model, the operator process, and the serving pods, which the pod runner executes
as local processes answering real predictions in their own network namespaces, reached through
their Service (kube-proxy).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.controlplane import REPO, ControlPlane
from harness.demo_support import NS, md_status, say, show
from harness.models import register_trained
from harness.podnet import PodNetwork
from harness.procs import HarnessError, Proc, eventually, free_port
from harness.services import MLflowServer, Prometheus

MODEL = "churn-classifier"
RUNTIME_IMAGE = "mlrollout.local/runtime:demo"  # under the runner's registry: served for real


def model_deployment(tracking_uri: str, replicas: int, prometheus: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlrollout.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "churn", "namespace": NS},
        "spec": {
            "model": {"name": MODEL, "alias": "challenger"},
            "registry": {"trackingUri": tracking_uri, "championAlias": "champion"},
            # The demo's bad release is a pyfunc model logged as code: loading it runs its code, which
            # the runtime refuses unless the ModelDeployment opts in.
            "serving": {"image": RUNTIME_IMAGE, "replicas": replicas, "allowCode": True},
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 5},
                        {"analysis": {"count": 2}},
                        {"setWeight": 50},
                        {"analysis": {"count": 1}},
                        {"setWeight": 100},
                        {"pause": {"duration": "5s"}},
                    ]
                }
            },
            "analysis": {
                "prometheus": {"address": prometheus},
                "interval": "5s",
                "minRequests": 3,
                "metrics": [
                    {"name": "error-rate", "template": "errorRate", "max": 0.01},
                    {"name": "p99-latency", "template": "latencyP99", "max": 0.5},
                ],
            },
        },
    }


class Traffic:
    """Requests to the Service in the background while the canary runs, as users would send them."""

    def __init__(self, address: str) -> None:
        self.address, self.sent = address, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if _try_predict(self.address) is not None:
                self.sent += 1


def follow_rollout(cp: ControlPlane, stable: str, timeout: float = 240) -> dict[str, Any]:
    """Print each change of phase, step, weights and analysis until `stable` serves alone."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = md_status(cp)
        rollout = st.get("rollout") or {}
        run = rollout.get("analysis") or {}
        line = (
            f"   phase: {st.get('phase')}  stable={st.get('stableVersion')}  canary={st.get('canaryVersion')}"
            f"  step={rollout.get('stepIndex')}  weight={(st.get('weights') or {}).get('canary')}%"
            + (f"  analysis {run.get('verdict')} {run.get('taken', 0)}/{run.get('count')}" if run else "")
        )
        if line != last:
            print(line)
            last = line
        if (
            st.get("phase") == "Healthy"
            and st.get("stableVersion") == stable
            and not rollout.get("candidate")
        ):
            return st
        time.sleep(0.5)
    show(cp, "describe", "modeldeployment", "churn", "-n", NS)
    raise HarnessError(f"demo: version {stable} was not promoted in {timeout:.0f}s")


def follow_phase(cp: ControlPlane, want: str, timeout: float = 240) -> dict[str, Any]:
    seen = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = md_status(cp)
        if st.get("phase") != seen:
            seen = st.get("phase")
            print(
                f"   phase: {seen}  stable={st.get('stableVersion')}  "
                f"observedGeneration={st.get('observedGeneration')}"
            )
        if seen == want:
            return st
        time.sleep(1)
    show(cp, "describe", "modeldeployment", "churn", "-n", NS)
    raise HarnessError(f"demo: ModelDeployment did not reach {want} in {timeout:.0f}s (last: {seen})")


def predict(address: str) -> str:
    body = json.dumps(
        {
            "dataframe_records": [
                {"tenure": 0.1, "monthly_spend": 1.2, "support_calls": 2.5, "age": 0.3},
                {"tenure": 2.0, "monthly_spend": -0.4, "support_calls": -1.0, "age": 1.1},
            ]
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{address}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(r.read().decode())


def _try_predict(address: str) -> str | None:
    try:
        return predict(address)
    except OSError:  # until kube-proxy has programmed the Service
        return None


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through main()'s finally: nothing started is left running


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="mlrollout-demo-"))
    try:
        net = PodNetwork.create()  # pods get addresses Services can route to
    except HarnessError as e:
        sys.exit(f"demo failed: {e}")
    cp = ControlPlane(work / "cluster", network=net)
    extra: list[Any] = []
    runner = None
    try:
        say("Starting a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        cp.start()
        from harness.runner import PodRunner

        prom = Prometheus(work / "prometheus", host=net.host_ip).start()
        extra.append(prom)
        runner = PodRunner(str(cp.kubeconfig), work / "pods", cp.api_port, prom.runner_targets, net).start()
        say("Starting an MLflow tracking server and registering a trained churn classifier")
        mlflow = MLflowServer(work / "mlflow", host=net.host_ip).start()
        extra.append(mlflow)
        v1 = register_trained(mlflow.uri, MODEL, seed=1)
        from mlflow.tracking import MlflowClient

        for alias in ("champion", "challenger"):
            MlflowClient(mlflow.uri).set_registered_model_alias(MODEL, alias, v1)
        print(f"   registered {MODEL} version {v1}, aliases champion and challenger -> {v1}")

        say("Installing the CRD and starting the operator")
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        eventually(
            what="the CRD to be Established",
            check=lambda: (
                cp.kubectl(
                    "get",
                    "crd",
                    "modeldeployments.mlrollout.io",
                    "-o",
                    'jsonpath={.status.conditions[?(@.type=="Established")].status}',
                ).stdout
                == "True"
            ),
            timeout=60,
        )
        cp.kubectl("create", "namespace", NS)
        operator = Proc(
            "operator",
            [str(Path(sys.executable).parent / "mlrollout-operator")],
            work / "operator.log",
            env=dict(
                os.environ,
                KUBECONFIG=str(cp.kubeconfig),
                MLROLLOUT_NAMESPACES=NS,
                MLROLLOUT_HEALTH_HOST="127.0.0.1",
                MLROLLOUT_HEALTH_PORT=str(free_port()),
                # The demo moves MLflow aliases by hand and registers no webhook: without one, the
                # operator asks the registry only on its slow resync (300 s by default).
                MLROLLOUT_REGISTRY_RESYNC_SECONDS="2",
            ),
        ).start()
        extra.append(operator)

        say("A bad spec is rejected by the API server, naming the field")
        bad = model_deployment(mlflow.uri, -1, prom.url)
        r = cp.kubectl("apply", "-f", "-", input=json.dumps(bad))
        print("   " + (r.stderr.strip() or r.stdout.strip()))

        say("Applying ModelDeployment churn (model alias challenger, 1 replica)")
        cp.kubectl("apply", "-f", "-", input=json.dumps(model_deployment(mlflow.uri, 1, prom.url)))
        st = follow_phase(cp, "Healthy")
        show(cp, "get", "modeldeployments", "-n", NS)
        show(cp, "get", "deployments,services,pods", "-n", NS, "-o", "wide")

        from mlrollout.api.names import service_name

        svc = json.loads(cp.kubectl("get", "service", service_name("churn"), "-n", NS, "-o", "json").stdout)
        address = f"{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        say(
            f"Asking Service {service_name('churn')} for predictions (ClusterIP {address}, routed by "
            f"kube-proxy to a serving pod; the alias was pinned to version {st.get('stableVersion')})"
        )
        out = eventually(lambda: _try_predict(address), what="the Service to answer", timeout=30)
        for _ in range(4):
            out = predict(address)
        print(f"   POST /invocations -> {out}")
        scraped = eventually(
            what="Prometheus to scrape the pod",
            check=lambda: prom.query(f'sum(mlrollout_requests_total{{namespace="{NS}"}})'),
            timeout=30,
        )
        total = scraped[0]["value"][1]
        print(f"   Prometheus: sum(mlrollout_requests_total) = {total}")

        say("Scaling to 2 replicas by editing the spec")
        cp.kubectl(
            "patch",
            "modeldeployment",
            "churn",
            "-n",
            NS,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"serving": {"replicas": 2}}}),
        )
        eventually(
            what="2 ready replicas",
            check=lambda: (
                md_status(cp).get("phase") == "Healthy"
                and (
                    json.loads(cp.kubectl("get", "deployments", "-n", NS, "-o", "json").stdout)["items"][0][
                        "status"
                    ].get("readyReplicas")
                    == 2
                )
            ),
        )
        show(cp, "get", "pods", "-n", NS, "-o", "wide")

        say("Version 2 arrives (alias challenger -> 2): a canary with live analysis on Prometheus")
        v2 = register_trained(mlflow.uri, MODEL, seed=2)
        client = MlflowClient(mlflow.uri)
        client.set_registered_model_alias(MODEL, "challenger", v2)
        with Traffic(address) as traffic:
            follow_rollout(cp, v2)
        champion = client.get_model_version_by_alias(MODEL, "champion").version
        tags = client.get_model_version(MODEL, v2).tags
        print(f"   {traffic.sent} requests sent to the Service during the rollout")
        print(f"   MLflow: alias champion -> {champion}; version {v2} tagged {tags.get('mlrollout.rollout')}")
        plugin = Path(sys.executable).parent / "kubectl-mlrollout"
        for args in (("status",), ("history",)):
            r = subprocess.run(
                [str(plugin), *args, "churn", "-n", NS, "--kubeconfig", str(cp.kubeconfig)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            print(
                f"   $ kubectl mlrollout {args[0]} churn\n"
                + "\n".join("     " + x for x in r.stdout.splitlines())
            )

        from harness.demo_rollback import bad_candidate_rolled_back

        bad_candidate_rolled_back(cp, mlflow.uri, address)

        from harness.demo_gate import show_gate

        show_gate(cp, mlflow.uri, address)

        from harness.demo_monitor import show_monitoring

        show_monitoring(cp, NS, "churn", address)

        from harness.demo_experiments import ab_test_decided, shadow_into_canary

        shadow_into_canary(cp, mlflow.uri, prom.url)
        ab_test_decided(cp, mlflow.uri, prom.url)

        from harness.demo_loop import show_loop

        show_loop(cp, NS, mlflow.uri, RUNTIME_IMAGE)
        say("Events recorded on the ModelDeployment")
        show(cp, "get", "events", "-n", NS, "--field-selector", "involvedObject.kind=ModelDeployment")

        say("Deleting the ModelDeployment: the finalizer cleans up its children")
        cp.kubectl("delete", "modeldeployment", "churn", "-n", NS, "--wait=true", "--timeout=60s")
        eventually(
            what="children to go",
            check=lambda: (
                not json.loads(cp.kubectl("get", "deployments,services", "-n", NS, "-o", "json").stdout)[
                    "items"
                ]
            ),
            timeout=60,
        )
        show(cp, "get", "all", "-n", NS)
        say("Demo finished: everything it started is being stopped")
    except (HarnessError, AssertionError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        for p in extra:
            log = getattr(p, "log", None)
            if log and Path(log).exists():
                print(f"--- {log}\n" + "\n".join(Path(log).read_text().splitlines()[-20:]), file=sys.stderr)
        sys.exit(1)
    finally:
        if runner is not None:
            runner.stop()
        for p in reversed(extra):
            p.stop()
        cp.stop()
        net.destroy()


if __name__ == "__main__":
    main()
