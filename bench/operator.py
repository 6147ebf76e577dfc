"""`make bench-operator`: the operator at scale on the real control plane with kwok nodes.

For each size (MLROLLOUT_BENCH_SIZES, default 100,1000) in a fresh namespace: create the
ModelDeployments (pinned to version 1 of a model in the harness's real MLflow), wait until all are
Healthy, then measure side by side in the same run:

- idle API requests per ModelDeployment per minute, event-driven design vs the old polling design
  (MLROLLOUT_POLLING=true), from the API server's own apiserver_request_total: the operator's share
  is the delta with the operator running minus a window with no operator (kwok, controllers);
- operator RSS in each design;
- a canary for every ModelDeployment (spec moved to version 2): time from the spec change (patch
  acknowledged) to the operator's first action (the canary Deployment seen by a watch), p50 and p99,
  and reconciles per second until all are Healthy on version 2.

Prints a table; JSON under bench/results/. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from harness.controlplane import ADMIN_TOKEN_FILE, ControlPlane
from harness.procs import free_port
from harness.services import MLflowServer

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "crds" / "mlrollout.io_modeldeployments.yaml"
OPERATOR = Path(sys.executable).parent / "mlrollout-operator"
GROUP, VERSION, PLURAL = "mlrollout.io", "v1alpha1", "modeldeployments"
IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # never run: kwok makes the pods ready
MODEL = "bench-model"


class Operator:
    def __init__(self, kubeconfig: Path, namespace: str, log: Path, **env: str) -> None:
        self.port = free_port()
        full = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            MLROLLOUT_NAMESPACES=namespace,
            MLROLLOUT_HEALTH_PORT=str(self.port),
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.out = log.open("ab")
        self.proc = subprocess.Popen([str(OPERATOR)], env=full, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}; log {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"operator not live; log {log}")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def reconciles(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("mlrollout_operator_reconciles_total{")
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def api_requests(cp: ControlPlane) -> float:
    """Sum of apiserver_request_total over every verb, resource and code (the API server's /metrics)."""
    token = (cp.workdir / ADMIN_TOKEN_FILE).read_text().strip()
    context = ssl.create_default_context(cafile=str(cp.workdir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"https://{cp.host}:{cp.api_port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    )


def md(name: str, uri: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": MODEL, "version": version},
            "registry": {"trackingUri": uri},
            "serving": {"image": IMAGE, "replicas": 1},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}},
        },
    }


def phases(objects: client.CustomObjectsApi, namespace: str) -> list[tuple[str, str, str]]:
    found: dict[str, Any] = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)  # type: ignore[assignment]
    return [
        (
            i["metadata"]["name"],
            (i.get("status") or {}).get("phase", ""),
            str((i.get("status") or {}).get("stableVersion", "")),
        )
        for i in found["items"]
    ]


def wait_all(objects: client.CustomObjectsApi, namespace: str, n: int, version: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        seen = phases(objects, namespace)
        done = sum(1 for _, phase, stable in seen if phase == "Healthy" and stable == version)
        if done >= n:
            return time.monotonic() - started
        time.sleep(3)
    raise RuntimeError(f"only {done}/{n} Healthy on version {version} after {timeout:.0f} s")


def idle_rate(cp: ControlPlane, window: float) -> float:
    before = api_requests(cp)
    time.sleep(window)
    return (api_requests(cp) - before) / window * 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_size(
    n: int, cp: ControlPlane, api: client.ApiClient, uri: str, window: float, logs: Path
) -> dict[str, Any]:
    kubeconfig = cp.kubeconfig
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-{n}-{int(time.time()) % 100000}"
    core.create_namespace({"metadata": {"name": namespace}})
    result: dict[str, Any] = {"size": n, "namespace": namespace}
    op = Operator(kubeconfig, namespace, logs / f"operator-{n}-event.log")
    try:
        t0 = time.monotonic()
        for i in range(n):
            objects.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, md(f"md-{i:05d}", uri, "1")
            )
        result["create_seconds"] = round(time.monotonic() - t0, 1)
        result["healthy_seconds"] = round(wait_all(objects, namespace, n, "1", 120 + 2.0 * n), 1)
        time.sleep(15)  # the last requeues of the way to Healthy have run
        ticks = op.reconciles()
        result["event_idle_api_per_min"] = idle_rate(cp, window)
        result["event_idle_reconciles"] = op.reconciles() - ticks
        result["event_rss_mib"] = round(op.rss_mib(), 1)
    finally:
        op.stop()
    result["baseline_api_per_min"] = idle_rate(cp, window)  # no operator: kwok, controllers
    old = Operator(kubeconfig, namespace, logs / f"operator-{n}-polling.log", MLROLLOUT_POLLING="true")
    try:
        time.sleep(20)  # every object has had its first tick
        result["polling_idle_api_per_min"] = idle_rate(cp, window)
        result["polling_rss_mib"] = round(old.rss_mib(), 1)
    finally:
        old.stop()
    for design in ("event", "polling"):
        own = max(result[f"{design}_idle_api_per_min"] - result["baseline_api_per_min"], 0.0)
        result[f"{design}_idle_api_per_md_per_min"] = round(own / n, 3)

    # A canary for every object: version 2 in the spec, first action = the canary Deployment appears.
    op = Operator(kubeconfig, namespace, logs / f"operator-{n}-canary.log")
    first_seen: dict[str, float] = {}
    stop = threading.Event()

    def watch_canaries() -> None:
        apps = client.AppsV1Api(api)
        w = watch.Watch()
        for event in w.stream(apps.list_namespaced_deployment, namespace, timeout_seconds=int(600 + 2 * n)):
            if stop.is_set():
                w.stop()
                break
            meta = event["object"].metadata
            labels = meta.labels or {}
            if event["type"] == "ADDED" and labels.get("mlrollout.io/track") == "canary":
                first_seen.setdefault(labels.get("mlrollout.io/deployment", ""), time.monotonic())

    watcher = threading.Thread(target=watch_canaries, daemon=True)
    try:
        time.sleep(10)  # resumed: every object had its first tick
        watcher.start()
        time.sleep(2)
        patched: dict[str, float] = {}
        ticks, t0 = op.reconciles(), time.monotonic()
        for i in range(n):
            name = f"md-{i:05d}"
            objects.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"version": "2"}}}
            )
            patched[name] = time.monotonic()
        result["canary_seconds"] = round(
            wait_all(objects, namespace, n, "2", 300 + 3.0 * n) + time.monotonic() - t0, 1
        )
        elapsed = time.monotonic() - t0
        result["reconciles_per_second"] = round((op.reconciles() - ticks) / elapsed, 1)
        result["canary_rss_mib"] = round(op.rss_mib(), 1)
        latencies = [first_seen[k] - patched[k] for k in patched if k in first_seen]
        result["first_action_seen"] = len(latencies)
        if latencies:
            result["first_action_p50_s"] = round(statistics.median(latencies), 3)
            result["first_action_p99_s"] = round(percentile(latencies, 0.99), 3)
    finally:
        stop.set()
        op.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("MLROLLOUT_BENCH_SIZES", "100,1000"))
    parser.add_argument("--window", type=float, default=float(os.environ.get("MLROLLOUT_BENCH_WINDOW", "60")))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="mlrollout-bench-operator-"))
    # One Service per ModelDeployment: 5,000 need more than the harness's default /24 (the test range).
    cp = ControlPlane(work / "cluster", loopback_service_cidr="198.19.0.0/16").start()
    mlflow = MLflowServer(work / "mlflow").start()
    results: list[dict[str, Any]] = []
    out = REPO / "bench" / "results" / f"operator-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every size: a long run that is stopped keeps what it measured
        out.write_text(json.dumps({"sizes": sizes, "window_s": args.window, "results": results}, indent=2))

    try:
        cp.kubectl("apply", "--server-side", "-f", str(CRD))
        time.sleep(3)
        from mlflow import MlflowClient

        registry = MlflowClient(tracking_uri=mlflow.uri, registry_uri=mlflow.uri)
        registry.create_registered_model(MODEL)
        for _ in range(2):
            registry.create_model_version(MODEL, source="s3://bucket/models/m")
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        for n in sizes:
            print(f"size {n}: running (logs in {work})", flush=True)
            try:
                results.append(run_size(n, cp, api, mlflow.uri, args.window, work))
            except Exception as e:  # report what happened at this size and go on
                results.append({"size": n, "error": str(e)[:500]})
            print(json.dumps(results[-1]), flush=True)
            save()
    finally:
        mlflow.stop()
        cp.stop()
    columns = [
        ("size", "MDs"),
        ("first_action_p50_s", "p50 s"),
        ("first_action_p99_s", "p99 s"),
        ("reconciles_per_second", "rec/s"),
        ("event_idle_api_per_md_per_min", "idle req/MD/min (event)"),
        ("polling_idle_api_per_md_per_min", "idle req/MD/min (polling)"),
        ("event_rss_mib", "RSS MiB (event)"),
        ("canary_rss_mib", "RSS MiB (canary)"),
        ("polling_rss_mib", "RSS MiB (polling)"),
    ]
    print(" | ".join(title for _, title in columns))
    for r in results:
        print(" | ".join(str(r.get(key, "-")) for key, _ in columns))
    save()
    print(f"saved {out}")


if __name__ == "__main__":
    main()
