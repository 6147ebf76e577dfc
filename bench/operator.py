"""`make bench-operator`: the operator at scale on the real control plane with kwok nodes.

For each size (MLROLLOUT_BENCH_SIZES, default 100,1000) in a fresh namespace: create the
ModelDeployments (pinned to version 1 of a model in the harness's real MLflow), wait until all are
Healthy, then measure side by side in the same run:

- idle API requests per ModelDeployment per minute, event-driven design vs the old polling design
  (MLROLLOUT_POLLING=true), from the API server's own apiserver_request_total: the operator's share
  is the delta with the operator running minus a window with no operator (kwok, controllers);
- operator RSS in each design, and in the event-driven one again after the canaries (memory must
  not grow with history);
- (a) the latency of single spec changes while all N are managed: a sample of ModelDeployments
  moved to version 2 one at a time, MLROLLOUT_BENCH_PACE seconds apart; time from the spec change
  (patch acknowledged) to the operator's first action (the canary Deployment seen by a watch), p50
  and p99. Sampling starts 10 s after the operator (re)starts, while its start-up wave (one tick per
  object) may still run: a change must not wait behind it;
- (b) a burst: every ModelDeployment moved to version 3 at once, which measures how fast the queue
  drains, not the latency of one change: reconciles per second, first action p50/p99 within the
  burst, and the time until all are Healthy on version 3.

Prints a table; JSON under bench/results/. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
            MLROLLOUT_HEALTH_HOST="127.0.0.1",
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


# What the operator asks of the API server and no controller does (controllers read through informers
# and write status with PUT): any request on modeldeployments; GET, LIST, PATCH (server-side apply)
# and DELETE on its children's kinds and HPAs. Counting only these keeps the cluster's own settling
# after a burst (ReplicaSets, EndpointSlices, kwok's pod updates) out of the operator's figure.
OPERATOR_VERBS = {"GET", "LIST", "PATCH", "DELETE", "POST", "APPLY"}
CHILD_RESOURCES = {"deployments", "services", "configmaps", "jobs", "cronjobs", "horizontalpodautoscalers"}
LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_requests(cp: ControlPlane) -> tuple[float, float]:
    """apiserver_request_total (the API server's /metrics): every request, and the operator's kind."""
    token = (cp.workdir / ADMIN_TOKEN_FILE).read_text().strip()
    context = ssl.create_default_context(cafile=str(cp.workdir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"https://{cp.host}:{cp.api_port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as r:
        text = r.read().decode()
    total = operator_kind = 0.0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(LABEL.findall(line[: line.rindex("}")]))
        value = float(line.rsplit(" ", 1)[1])
        total += value
        resource, verb = labels.get("resource", ""), labels.get("verb", "")
        if resource == PLURAL or (
            resource in CHILD_RESOURCES and verb in OPERATOR_VERBS and not labels.get("subresource")
        ):
            operator_kind += value
    return total, operator_kind


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
        # A LIST of every object, deserialized here: at 5,000 every 3 s took half a core from the
        # operator being measured.
        time.sleep(max(3.0, n / 250))
    raise RuntimeError(f"only {done}/{n} Healthy on version {version} after {timeout:.0f} s")


def wait_until(
    objects: client.CustomObjectsApi, namespace: str, which: set[str], version: str, timeout: float
) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        seen = phases(objects, namespace)
        done = {name for name, phase, stable in seen if phase == "Healthy" and stable == version}
        if which <= done:
            return
        time.sleep(max(2.0, len(seen) / 250))  # as in wait_all: the LIST of every object is not free
    raise RuntimeError(
        f"{len(which - done)} of the sample not Healthy on version {version} after {timeout:.0f} s"
    )


def idle_rate(cp: ControlPlane, window: float) -> tuple[float, float]:
    """Requests per minute over `window`: (all, the operator's kind)."""
    before = api_requests(cp)
    time.sleep(window)
    after = api_requests(cp)
    return tuple(round((a - b) / window * 60.0, 1) for a, b in zip(after, before, strict=True))  # type: ignore[return-value]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class CanaryWatch:
    """First sight of each ModelDeployment's canary Deployment (its ADDED event), from a watch."""

    def __init__(self, api: client.ApiClient, namespace: str, timeout: int) -> None:
        self.first_seen: dict[tuple[str, str], float] = {}
        self.stop = threading.Event()
        self.api, self.namespace, self.timeout = api, namespace, timeout
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        apps = client.AppsV1Api(self.api)
        w = watch.Watch()
        # Server-side filtered to canary tracks: at 1,000 objects an unfiltered watch (every stable
        # Deployment's status updates, deserialized here) fell minutes behind and saw no canary.
        for event in w.stream(
            apps.list_namespaced_deployment,
            self.namespace,
            label_selector="mlrollout.io/track=canary",
            timeout_seconds=self.timeout,
        ):
            if self.stop.is_set():
                w.stop()
                break
            labels = event["object"].metadata.labels or {}
            # A canary track made for a version (or an existing one moved to it): the first action.
            if event["type"] in ("ADDED", "MODIFIED") and labels.get("mlrollout.io/track") == "canary":
                key = (
                    labels.get("mlrollout.io/deployment", ""),
                    labels.get("mlrollout.io/model-version", ""),
                )
                self.first_seen.setdefault(key, time.monotonic())

    def latencies(self, patched: dict[str, float], version: str, wait: float = 60.0) -> list[float]:
        """Waits (up to `wait` s) for the watch to have seen every change's first action."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any((k, version) not in self.first_seen for k in patched):
            time.sleep(1)
        return [
            self.first_seen[(k, version)] - t for k, t in patched.items() if (k, version) in self.first_seen
        ]


def summary(latencies: list[float], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{prefix}_seen": len(latencies)}
    if latencies:
        out[f"{prefix}_p50_s"] = round(statistics.median(latencies), 3)
        out[f"{prefix}_p99_s"] = round(percentile(latencies, 0.99), 3)
        out[f"{prefix}_max_s"] = round(max(latencies), 3)
    return out


def patch_version(objects: client.CustomObjectsApi, namespace: str, name: str, version: str) -> float:
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"version": version}}}
    )
    return time.monotonic()


PODS_PER_NODE = 500  # what kwok's nodes report allocatable


def add_nodes(cp: ControlPlane, pods: int) -> int:
    """Fake nodes (kwok manages every Node) for `pods` pods: a canary runs two per ModelDeployment, and
    the harness's two nodes hold 1,000 (the last hundred of a 1,000 run stayed Pending)."""
    count = -(-pods // PODS_PER_NODE)
    for i in range(count):
        name = f"bench-node-{i}"
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "type": "kwok", "kubernetes.io/os": "linux"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
        }
        cp.kubectl_apply(node)
    return count


def run_size(
    n: int,
    cp: ControlPlane,
    api: client.ApiClient,
    uri: str,
    window: float,
    logs: Path,
    sample: int,
    pace: float,
    burst_max: int,
    result: dict[str, Any],
) -> dict[str, Any]:
    """Fills `result` as it goes: a run stopped half-way keeps what it measured."""
    kubeconfig = cp.kubeconfig
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-{n}-{int(time.time()) % 100000}"
    core.create_namespace({"metadata": {"name": namespace}})
    result |= {"size": n, "namespace": namespace}
    op = Operator(kubeconfig, namespace, logs / f"operator-{n}-event.log")
    try:
        t0 = time.monotonic()
        for i in range(n):
            objects.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, md(f"md-{i:05d}", uri, "1")
            )
        result["create_seconds"] = round(time.monotonic() - t0, 1)
        result["healthy_seconds"] = round(wait_all(objects, namespace, n, "1", 120 + 2.0 * n), 1)
        time.sleep(35)  # the last requeues of the way to Healthy (30 s safety polls) have run
        ticks = op.reconciles()
        result["event_idle_api_per_min"], result["event_idle_operator_kind_per_min"] = idle_rate(cp, window)
        result["event_idle_reconciles"] = op.reconciles() - ticks
        result["event_rss_mib"] = round(op.rss_mib(), 1)
    finally:
        op.stop()
    # No operator: kwok, controllers.
    result["baseline_api_per_min"], result["baseline_operator_kind_per_min"] = idle_rate(cp, window)
    old = Operator(kubeconfig, namespace, logs / f"operator-{n}-polling.log", MLROLLOUT_POLLING="true")
    try:
        time.sleep(20)  # every object has had its first tick
        result["polling_idle_api_per_min"], result["polling_idle_operator_kind_per_min"] = idle_rate(
            cp, window
        )
        result["polling_rss_mib"] = round(old.rss_mib(), 1)
    finally:
        old.stop()
    for design in ("event", "polling"):
        own = max(result[f"{design}_idle_api_per_min"] - result["baseline_api_per_min"], 0.0)
        result[f"{design}_idle_api_per_md_per_min"] = round(own / n, 3)
        kind = max(
            result[f"{design}_idle_operator_kind_per_min"] - result["baseline_operator_kind_per_min"], 0.0
        )
        result[f"{design}_idle_operator_kind_per_md_per_min"] = round(kind / n, 3)

    # (a) single spec changes while all N are managed, (b) a burst of N.
    op = Operator(kubeconfig, namespace, logs / f"operator-{n}-canary.log")
    canaries = CanaryWatch(api, namespace, int(1200 + 3 * n))
    try:
        time.sleep(10)  # resumed: every object had its first tick
        result["canary_start_rss_mib"] = round(op.rss_mib(), 1)
        names = [f"md-{i:05d}" for i in range(n)]
        step = max(1, n // sample)
        paced: dict[str, float] = {}
        for name in names[::step][:sample]:
            paced[name] = patch_version(objects, namespace, name, "2")
            time.sleep(pace)
        single = canaries.latencies(paced, "2")
        result |= summary(single, "single_first_action")
        result["single_latencies_s"] = [round(x, 3) for x in sorted(single)]  # outliers, in full
        wait_until(objects, namespace, set(paced), "2", 300 + 3.0 * len(paced))
        result["single_sample"] = len(paced)
        result["single_pace_s"] = pace

        if n > burst_max:  # (b) skipped: it would outlast the run (MLROLLOUT_BENCH_BURST_MAX)
            result["burst_skipped"] = f"size above MLROLLOUT_BENCH_BURST_MAX={burst_max}"
            result["after_rss_mib"] = round(op.rss_mib(), 1)
            return result
        burst: dict[str, float] = {}
        ticks, t0 = op.reconciles(), time.monotonic()
        for name in names:
            burst[name] = patch_version(objects, namespace, name, "3")
        result["burst_patch_seconds"] = round(time.monotonic() - t0, 1)
        result["burst_healthy_seconds"] = round(
            wait_all(objects, namespace, n, "3", 300 + 3.0 * n) + time.monotonic() - t0, 1
        )
        elapsed = time.monotonic() - t0
        result["burst_reconciles"] = op.reconciles() - ticks
        result["burst_reconciles_per_second"] = round((op.reconciles() - ticks) / elapsed, 1)
        result |= summary(canaries.latencies(burst, "3"), "burst_first_action")
        result["canary_rss_mib"] = round(op.rss_mib(), 1)
        time.sleep(window)  # idle again after the history of two canaries each
        result["after_rss_mib"] = round(op.rss_mib(), 1)
    finally:
        canaries.stop.set()
        op.stop()
        # The next size starts from an empty cluster: no pods, no children, nothing to watch.
        core.delete_namespace(namespace, propagation_policy="Background")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("MLROLLOUT_BENCH_SIZES", "100,1000"))
    parser.add_argument("--window", type=float, default=float(os.environ.get("MLROLLOUT_BENCH_WINDOW", "60")))
    parser.add_argument("--sample", type=int, default=int(os.environ.get("MLROLLOUT_BENCH_SAMPLE", "50")))
    parser.add_argument(
        "--burst-max", type=int, default=int(os.environ.get("MLROLLOUT_BENCH_BURST_MAX", "1000000"))
    )
    parser.add_argument("--pace", type=float, default=float(os.environ.get("MLROLLOUT_BENCH_PACE", "1.5")))
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
        settings = {"sizes": sizes, "window_s": args.window, "sample": args.sample, "pace_s": args.pace}
        out.write_text(json.dumps(settings | {"results": results}, indent=2))

    try:
        cp.kubectl("apply", "--server-side", "-f", str(CRD))
        print(f"{add_nodes(cp, 2 * max(sizes) + 200)} fake nodes added", flush=True)
        time.sleep(3)
        from mlflow import MlflowClient

        registry = MlflowClient(tracking_uri=mlflow.uri, registry_uri=mlflow.uri)
        registry.create_registered_model(MODEL)
        for _ in range(3):
            registry.create_model_version(MODEL, source="s3://bucket/models/m")
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        for n in sizes:
            print(f"size {n}: running (logs in {work})", flush=True)
            results.append({"size": n})
            try:
                run_size(
                    n,
                    cp,
                    api,
                    mlflow.uri,
                    args.window,
                    work,
                    args.sample,
                    args.pace,
                    args.burst_max,
                    results[-1],
                )
            except Exception as e:  # report what happened at this size and go on
                results[-1]["error"] = str(e)[:500]
            print(json.dumps(results[-1]), flush=True)
            save()
    finally:
        save()
        mlflow.stop()
        cp.stop()
    columns = [
        ("size", "MDs"),
        ("single_first_action_p50_s", "single p50 s"),
        ("single_first_action_p99_s", "single p99 s"),
        ("burst_first_action_p50_s", "burst p50 s"),
        ("burst_first_action_p99_s", "burst p99 s"),
        ("burst_reconciles_per_second", "burst rec/s"),
        ("burst_healthy_seconds", "burst all Healthy s"),
        ("event_idle_operator_kind_per_md_per_min", "idle req/MD/min (event)"),
        ("polling_idle_operator_kind_per_md_per_min", "idle req/MD/min (polling)"),
        ("event_idle_api_per_md_per_min", "idle all req/MD/min (event)"),
        ("polling_idle_api_per_md_per_min", "idle all req/MD/min (polling)"),
        ("event_rss_mib", "RSS MiB (event idle)"),
        ("canary_rss_mib", "RSS MiB (after burst)"),
        ("after_rss_mib", "RSS MiB (idle after)"),
        ("polling_rss_mib", "RSS MiB (polling)"),
    ]
    print(" | ".join(title for _, title in columns))
    for r in results:
        print(" | ".join(str(r.get(key, "-")) for key, _ in columns))
    save()
    print(f"saved {out}")


if __name__ == "__main__":
    main()
