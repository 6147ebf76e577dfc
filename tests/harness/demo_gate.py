"""The demo's validation-gate act: a candidate rejected at the gate with its numbers on screen, then a
good one passing into its canary. Called by harness.demo with the running control plane:

    from harness.demo_gate import show_gate
    show_gate(cp, mlflow.uri, address)

The holdout is a local parquet file the gate Job reads by path. It lives under /var/tmp, not /tmp:
the gate pod mounts an emptyDir at /tmp (its root filesystem is read-only), which hides the host's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.controlplane import ControlPlane
from harness.demo_support import condition, md_status
from harness.models import FEATURES, churn, register_fitted, register_trained
from harness.procs import HarnessError

AUC_FLOOR = 0.84
TARGET = "churned"


def churn_frame(seed: int, n: int) -> Any:
    """The demo's churn problem (the rule harness.models.register_trained learns), with the target."""
    x, y = churn(seed, n)
    return x.assign(**{TARGET: y})


def register_mistrained(tracking_uri: str, model_name: str) -> str:
    """A candidate fitted to the wrong label (age and spend instead of churn): it loads, serves and
    answers, and its ROC AUC on the real target is about 0.46. (Shuffled labels would not do: by
    chance the fit still leaned on support_calls and scored 0.86.)"""
    from sklearn.linear_model import LogisticRegression

    train = churn_frame(7, 600)
    x, y = train[FEATURES], ((train["age"] + train["monthly_spend"]) > 0).astype(int)
    return register_fitted(tracking_uri, model_name, LogisticRegression().fit(x, y), x)


def follow_gate(cp: ControlPlane, version: str, name: str, ns: str, timeout: float = 300) -> dict[str, Any]:
    """Print the phase and the gate's progress until the gate of `version` has judged it."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = md_status(cp, name, ns)
        gate = (status.get("rollout") or {}).get("gate") or {}
        progressing = condition(status, "Progressing")
        line = (
            f"   phase: {status.get('phase')}  stable={status.get('stableVersion')}  "
            f"gate: {gate.get('phase', '-')} {gate.get('job', '')}  ({progressing.get('reason')})"
        )
        if line != last:
            print(line)
            last = line
        if str(gate.get("version")) == version and gate.get("phase") in ("Passed", "Failed"):
            return status
        time.sleep(0.5)
    raise HarnessError(f"demo: the gate of version {version} did not finish in {timeout:.0f}s")


def print_checks(status: dict[str, Any]) -> None:
    for check in ((status.get("rollout") or {}).get("gate") or {}).get("checks") or []:
        value, threshold = check.get("value"), check.get("threshold")
        shown = "-" if value is None else f"{value:.4f}"
        print(f"   {check['name']}: {check['verdict']}  value={shown}  threshold={threshold}")


def show_gate(
    cp: ControlPlane, tracking_uri: str, address: str, name: str = "churn", ns: str = "demo"
) -> None:
    """Turn the gate on (ROC AUC >= 0.84 on a holdout), then a bad candidate and a good one."""
    from mlflow.tracking import MlflowClient

    from harness.demo import MODEL, Traffic, follow_rollout
    from harness.demo_support import say, show

    client = MlflowClient(tracking_uri)
    data_dir = Path(tempfile.mkdtemp(prefix="mlrollout-demo-gate-", dir="/var/tmp"))
    try:
        holdout = data_dir / "holdout.parquet"
        churn_frame(100, 1000).to_parquet(holdout)
        say(f"Validation gate on: ROC AUC >= {AUC_FLOOR} on a holdout ({holdout}) before any traffic moves")
        validation = {
            "dataset": {"uri": str(holdout), "target": TARGET},
            "metrics": [{"name": "roc_auc", "min": AUC_FLOOR}],
            "timeout": "5m",
            "backoffLimit": 0,
        }
        patch = json.dumps({"spec": {"validation": validation}})
        cp.kubectl("patch", "modeldeployment", name, "-n", ns, "--type=merge", "-p", patch)

        bad = register_mistrained(tracking_uri, MODEL)
        say(f"Version {bad} arrives, fitted to the wrong label: the gate Job judges it first")
        client.set_registered_model_alias(MODEL, "challenger", bad)
        status = follow_gate(cp, bad, name, ns)
        print_checks(status)
        for _ in range(60):  # the rejection is written in the same tick as the gate's verdict
            if condition(status, "Progressing").get("reason") == "GateFailed":
                break
            time.sleep(0.5)
            status = md_status(cp, name, ns)
        print(f"   Progressing: {condition(status, 'Progressing').get('message')}")
        champion = client.get_model_version_by_alias(MODEL, "champion").version
        tags = client.get_model_version(MODEL, bad).tags
        print(
            f"   stable still {status.get('stableVersion')} (phase {status.get('phase')}), champion -> "
            f"{champion}; version {bad} tagged mlrollout.rollout={tags.get('mlrollout.rollout')}, "
            f"mlrollout.gate={tags.get('mlrollout.gate')}"
        )
        show(cp, "get", "jobs", "-n", ns)

        good = register_trained(tracking_uri, MODEL, seed=4)
        say(f"Version {good} arrives, trained properly: it passes the gate, then walks its canary")
        client.set_registered_model_alias(MODEL, "challenger", good)
        print_checks(follow_gate(cp, good, name, ns))
        with Traffic(address):
            follow_rollout(cp, good)
        plugin = Path(sys.executable).parent / "kubectl-mlrollout"
        r = subprocess.run(
            [str(plugin), "history", name, "-n", ns, "--kubeconfig", str(cp.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(
            "   $ kubectl mlrollout history churn\n" + "\n".join("     " + x for x in r.stdout.splitlines())
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
