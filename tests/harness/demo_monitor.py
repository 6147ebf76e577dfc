"""The demo's monitoring act: a drift verdict appears in `kubectl get md`, with the report's address.

Called by harness.demo once ModelDeployment `churn` serves: it switches spec.monitoring on (the
inference log on a local path, a hostPath in both the serving and the monitor pods), sends traffic
through the Service, starts the monitor CronJob's Job (as `kubectl create job --from=cronjob` does),
and shows the verdict: first on traffic like the training data, then on shifted traffic.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kubernetes import config

from harness import cronjob
from harness.controlplane import REPO, ControlPlane
from harness.demo_support import say
from harness.procs import HarnessError, eventually

FEATURES = ["tenure", "monthly_spend", "support_calls", "age"]


def _rows(n: int, seed: int, shift: float) -> pd.DataFrame:
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 4)), columns=FEATURES)
    return frame.assign(tenure=frame["tenure"] + shift, age=frame["age"] + shift)


def _send(address: str, frame: pd.DataFrame, attempts: int = 5) -> int:
    """Requests of 10 rows; one that cannot connect (kube-proxy still routing to a pod that just
    went) is sent again: it never reached a model, so nothing was logged for it."""
    sent = 0
    for i in range(0, len(frame), 10):
        body = json.dumps({"dataframe_split": frame.iloc[i : i + 10].to_dict(orient="split")}).encode()
        request = urllib.request.Request(
            f"http://{address}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=5):
                    sent += 1
                break
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
    return sent


def _rows_logged(folder: Path) -> int:
    return sum(len(pd.read_parquet(f)) for f in folder.rglob("*.parquet")) if folder.exists() else 0


def _md(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    r = cp.kubectl("get", "modeldeployment", name, "-n", ns, "-o", "json")
    return dict(json.loads(r.stdout)) if r.returncode == 0 else {}


def _drift_condition(body: dict[str, Any]) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Drift"), {})


def _run_monitor(cp: ControlPlane, ns: str, name: str, attempt: int, want: str) -> dict[str, Any]:
    api = config.new_client_from_config(str(cp.kubeconfig))  # type: ignore[no-untyped-call]
    job = cronjob.trigger(api, ns, f"{name}-monitor", f"demo-{attempt}")
    print(f"   $ kubectl create job {job} --from=cronjob/{name}-monitor   (the schedule would do it hourly)")
    if not cronjob.wait(api, ns, job):
        raise HarnessError(f"monitor Job {job} failed: {cp.kubectl('logs', f'job/{job}', '-n', ns).stdout}")

    def verdict() -> dict[str, Any] | None:
        body = _md(cp, ns, name)
        return body if _drift_condition(body).get("reason") == want else None

    return dict(eventually(what=f"the {want} verdict in status", check=verdict, timeout=60))


def show_monitoring(cp: ControlPlane, ns: str, name: str, address: str) -> None:
    """Monitoring on the running ModelDeployment `name`, its Service at `address` (host:port)."""
    root = Path("/var/tmp") / f"mlrollout-demo-{uuid.uuid4().hex[:8]}"  # pods' /tmp is an emptyDir
    root.mkdir(parents=True)
    try:
        _show(cp, ns, name, address, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _show(cp: ControlPlane, ns: str, name: str, address: str, root: Path) -> None:
    say("Monitoring: the training distribution as reference, the inference log on a local path")
    _rows(1000, 0, 0.0).to_parquet(root / "reference.parquet")
    cp.kubectl("apply", "-k", str(REPO / "manifests" / "job-serviceaccount"), "-n", ns)
    monitoring = {
        "schedule": "0 * * * *",
        "referenceUri": str(root / "reference.parquet"),
        "inferenceLogUri": str(root),
        "drift": {"minSamples": 150, "window": "1h"},
    }
    env = [{"name": "MLROLLOUT_INFERENCE_LOG_ROTATE_SECONDS", "value": "1"}]  # the demo cannot wait a minute
    patch = {"spec": {"monitoring": monitoring, "serving": {"env": env}}}
    cp.kubectl("patch", "modeldeployment", name, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    print(f"   spec.monitoring = {json.dumps(monitoring)}")
    eventually(
        what="the serving pods to roll (they log now) and the monitor CronJob",
        check=lambda: (
            cp.kubectl("get", "cronjob", f"{name}-monitor", "-n", ns).returncode == 0
            and _md(cp, ns, name).get("status", {}).get("phase") == "Healthy"
            and _only_new_pods(cp, ns, name)
            and _try_send(address)
        ),
        timeout=240,
    )
    print(cp.kubectl("get", "cronjob", "-n", ns).stdout.rstrip())
    log = root / ns / name / "predictions"

    say("Traffic like the training data -> the monitor says NoDrift")
    _send(address, _rows(300, 1, 0.0))
    eventually(what="the rows in the log", check=lambda: _rows_logged(log) >= 300, timeout=60)
    _run_monitor(cp, ns, name, 1, "NoDrift")
    print(cp.kubectl("get", "md", name, "-n", ns).stdout.rstrip())

    say("Traffic shifts (tenure and age up by 1.5 standard deviations) -> Drift, columns named")
    shutil.rmtree(log, ignore_errors=True)
    time.sleep(1.5)
    shutil.rmtree(log, ignore_errors=True)  # a fresh window: the demo cannot wait an hour either
    _send(address, _rows(400, 2, 1.5))
    eventually(what="the shifted rows in the log", check=lambda: _rows_logged(log) >= 400, timeout=60)
    body = _run_monitor(cp, ns, name, 2, "DriftDetected")
    print(cp.kubectl("get", "md", name, "-n", ns).stdout.rstrip())
    monitored = body["status"]["monitoring"]
    print(f"   condition Drift: {_drift_condition(body).get('message')}")
    for c in monitored.get("columns", []):
        print(
            f"     {c['column']:<14} {c['test']:<4} p={c.get('pValue', 0):.2e}  "
            f"effect={c.get('effectSize', 0):.3f}  drifted={c['drifted']}"
        )
    version, report = monitored.get("version"), monitored.get("reportUri")
    print(f"   Evidently report logged to MLflow on version {version}: {report}")
    events = cp.kubectl("get", "events", "-n", ns, "--field-selector", "reason=DriftDetected")
    print(events.stdout.rstrip())


def _only_new_pods(cp: ControlPlane, ns: str, name: str) -> bool:
    """Every serving pod has the inference log: the old ones (without it) are gone."""
    r = cp.kubectl("get", "pods", "-n", ns, "-l", f"mlrollout.io/deployment={name}", "-o", "json")
    pods = json.loads(r.stdout).get("items", []) if r.returncode == 0 else []
    return bool(pods) and all(
        any(e.get("name") == "MLROLLOUT_INFERENCE_LOG_URI" for e in p["spec"]["containers"][0].get("env", []))
        and p["status"].get("phase") == "Running"
        for p in pods
    )


def _try_send(address: str) -> bool:
    try:
        return _send(address, _rows(10, 9, 0.0), attempts=1) > 0
    except OSError:
        return False
