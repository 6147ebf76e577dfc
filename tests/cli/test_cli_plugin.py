"""`kubectl mlrollout` against the real API server: what it writes, prints and exits with.

The operator is not running here: each situation is a status written through the status
subresource, as the operator would write it, and the plugin's own behaviour is what is checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness.kube import KubeEnv
from mlrollout.api import names

pytestmark = pytest.mark.integration

PLUGIN = Path(sys.executable).parent / "kubectl-mlrollout"
SPEC = {
    "model": {"name": "churn-classifier", "alias": "champion"},
    "registry": {"trackingUri": "http://127.0.0.1:9"},
    "serving": {"image": "ghcr.io/example/mlrollout-runtime:0.1.0"},
    "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
}


class Md:
    def __init__(self, kube: KubeEnv, namespace: str, name: str = "churn") -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.api = client.CustomObjectsApi(kube.api_client())
        body = {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name}, "spec": SPEC}
        self.api.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, body)

    def get(self) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, self.name
        )
        return found

    def set_status(self, status: dict[str, Any]) -> None:
        current = self.get() | {"status": status}
        self.api.replace_namespaced_custom_object_status(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, self.name, current
        )

    def annotations(self) -> dict[str, str]:
        return dict(self.get()["metadata"].get("annotations") or {})

    def plugin(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(PLUGIN), *args[:1], "-n", self.namespace, "--kubeconfig", self.kube.kubeconfig, *args[1:]]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the spec's address
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


CANARY = {
    "phase": "Progressing",
    "observedGeneration": 1,
    "modelName": "churn-classifier",
    "stableVersion": "6",
    "weights": {"stable": 75, "canary": 25},
    "history": [
        {"version": "5", "promotedAt": "2026-11-20T08:00:00Z"},
        {"version": "6", "promotedAt": "2026-11-21T08:00:00Z"},
    ],
    "rollout": {
        "candidate": {"modelName": "churn-classifier", "version": "7"},
        "strategy": "canary",
        "stepIndex": 1,
        "stepStartedAt": "2026-11-23T08:00:00Z",
        "desiredWeight": 25,
        "analysis": {"stage": "step-1", "startedAt": "2026-11-23T08:00:00Z", "taken": 1, "count": 3},
    },
}


def test_promote_writes_one_request_and_is_idempotent(
    kube: KubeEnv, namespace: str, crd_installed: str
) -> None:
    md = Md(kube, namespace)
    refused = md.plugin("promote", "churn")
    assert refused.returncode == 1 and "no rollout in progress" in refused.stderr
    assert names.ANNOTATION_REQUEST not in md.annotations()

    md.set_status(CANARY)
    generation = md.get()["metadata"]["generation"]
    done = md.plugin("promote", "churn")
    assert done.returncode == 0, done.stderr
    assert "promote version 7 past step 1" in done.stdout
    request = json.loads(md.annotations()[names.ANNOTATION_REQUEST])
    assert request["action"] == "promote" and "v7-s1" in request["id"]
    again = md.plugin("promote", "churn")
    assert again.returncode == 0 and "already requested" in again.stdout
    assert json.loads(md.annotations()[names.ANNOTATION_REQUEST]) == request
    assert md.get()["metadata"]["generation"] == generation  # spec untouched

    full = md.plugin("promote", "churn", "--full")
    assert (
        full.returncode == 0
        and json.loads(md.annotations()[names.ANNOTATION_REQUEST])["action"] == "promote-full"
    )


HEALTHY = {
    "phase": "Healthy",
    "observedGeneration": 1,
    "modelName": "churn-classifier",
    "stableVersion": "6",
    "weights": {"stable": 100, "canary": 0},
    "history": CANARY["history"],
}


def test_pause_resume_undo_status_history_watch(kube: KubeEnv, namespace: str, crd_installed: str) -> None:
    md = Md(kube, namespace)
    md.set_status(CANARY)
    assert md.plugin("pause", "churn").returncode == 0
    assert md.annotations()[names.ANNOTATION_PAUSED] == "true"
    assert "already paused" in md.plugin("pause", "churn").stdout
    assert md.plugin("resume", "churn").returncode == 0
    assert names.ANNOTATION_PAUSED not in md.annotations()
    not_paused = md.plugin("resume", "churn")
    assert not_paused.returncode == 0 and "not paused" in not_paused.stdout

    running = md.plugin("undo", "churn")
    assert running.returncode == 1 and "abort it before an undo" in running.stderr
    assert names.ANNOTATION_REQUEST not in md.annotations()

    status = md.plugin("status", "churn")
    assert status.returncode == 0
    assert "Candidate:   7 (canary)" in status.stdout and "stable 75%, canary 25%" in status.stdout
    watch = md.plugin("watch", "churn", "--timeout", "1", "--interval", "0.2")
    assert watch.returncode == 3 and "phase=Progressing stable=6 candidate=7 step=1" in watch.stdout

    md.set_status(HEALTHY)
    wrong = md.plugin("undo", "churn", "--to-version", "9")
    assert wrong.returncode == 1 and "rollback window" in wrong.stderr
    undo = md.plugin("undo", "churn")
    assert undo.returncode == 0 and "from version 6 to 5" in undo.stdout
    assert json.loads(md.annotations()[names.ANNOTATION_REQUEST])["version"] == "5"
    history = md.plugin("history", "churn")  # the registry at 127.0.0.1:9 answers nothing
    assert history.returncode == 0
    assert history.stdout.splitlines()[:6] == [
        "WHEN                  EVENT            VERSION  CAUSE",
        "2026-11-21T08:00:00Z  promoted         6        -",
        "2026-11-20T08:00:00Z  promoted         5        -",
        "",
        "version 6 (stable): promoted 2026-11-21T08:00:00Z cause -",
        "version 5: promoted 2026-11-20T08:00:00Z cause -",
    ]
    assert "registry not reached" in history.stdout
    settled = md.plugin("watch", "churn", "--timeout", "30")
    assert settled.returncode == 0 and "phase=Healthy stable=6" in settled.stdout


def test_a_request_the_operator_refused_is_reported(
    kube: KubeEnv, namespace: str, crd_installed: str
) -> None:
    """The operator recorded the request as handled but not applied: the plugin says so, writes nothing."""
    md = Md(kube, namespace)
    md.set_status(CANARY)
    assert md.plugin("abort", "churn").returncode == 0
    request = json.loads(md.annotations()[names.ANNOTATION_REQUEST])
    rollout = {**CANARY["rollout"], "handledRequest": request["id"]}  # type: ignore[dict-item]
    refusal = {
        "type": "Request",
        "status": "False",
        "reason": "NotApplicable",
        "message": f"request {request['id']} not applied: the stable track is not ready",
        "lastTransitionTime": "2026-11-23T08:01:00Z",
    }
    md.set_status({**CANARY, "rollout": rollout, "conditions": [refusal]})
    version = md.get()["metadata"]["resourceVersion"]
    again = md.plugin("abort", "churn")
    assert again.returncode == 1
    assert "the operator did not apply abort" in again.stderr and "stable track is not ready" in again.stderr
    assert md.get()["metadata"]["resourceVersion"] == version  # nothing written


@pytest.mark.services
def test_history_shows_the_registry_tags(
    kube: KubeEnv, namespace: str, crd_installed: str, mlflow_server: Any
) -> None:
    from mlflow import MlflowClient

    model = f"churn-{uuid.uuid4().hex[:6]}"
    registry = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    registry.create_registered_model(model)
    for _ in range(7):
        registry.create_model_version(model, source="s3://bucket/churn")
    registry.set_model_version_tag(model, "6", "mlrollout.gate", "passed")
    registry.set_model_version_tag(model, "6", "mlrollout.rollout", "promoted")
    registry.set_model_version_tag(model, "6", "mlrollout.parent_version", "5")
    registry.set_model_version_tag(model, "6", "owner", "not shown")
    registry.set_model_version_tag(model, "7", "mlrollout.rollout", "rolled_back")
    registry.set_model_version_tag(model, "7", "mlrollout.rollout.reason", "error-rate 0.2 > max 0.01")
    registry.set_model_version_tag(model, "7", "mlrollout.rollout.at", "2026-11-22T09:00:00Z")
    # an older release rolled back: no longer in status, still in the registry's record
    registry.set_model_version_tag(model, "4", "mlrollout.rollout", "rolled_back")
    registry.set_model_version_tag(model, "4", "mlrollout.rollout.reason", "p99-latency 0.4 > max 0.1")
    registry.set_model_version_tag(model, "4", "mlrollout.rollout.at", "2026-11-19T09:00:00Z")
    md = Md(kube, namespace)
    history = [*HEALTHY["history"], {"version": "99", "promotedAt": "2026-11-22T08:00:00Z"}]  # type: ignore[misc]
    md.set_status(
        {
            **HEALTHY,
            "modelName": model,
            "history": history,
            "rollout": {"abortedVersion": "7", "lastOutcome": "version 7 rolled back: error-rate"},
        }
    )
    out = md.plugin("history", "churn", "--tracking-uri", mlflow_server.uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "WHEN                  EVENT            VERSION  CAUSE",
        "2026-11-22T09:00:00Z  rolled back      7        error-rate 0.2 > max 0.01",
        "2026-11-22T08:00:00Z  promoted         99       -",
        "2026-11-21T08:00:00Z  promoted         6        -",
        "2026-11-20T08:00:00Z  promoted         5        -",
        "2026-11-19T09:00:00Z  rolled back      4        p99-latency 0.4 > max 0.1",
        "",
        "version 7 (not promoted): version 7 rolled back: error-rate",
        "    mlrollout.rollout = rolled_back",
        "    mlrollout.rollout.at = 2026-11-22T09:00:00Z",
        "    mlrollout.rollout.reason = error-rate 0.2 > max 0.01",
        "version 99: promoted 2026-11-22T08:00:00Z cause -",  # unknown to MLflow: no tags, no failure
        "version 6 (stable): promoted 2026-11-21T08:00:00Z cause -",
        "    mlrollout.gate = passed",
        "    mlrollout.parent_version = 5",
        "    mlrollout.rollout = promoted",
        "version 5: promoted 2026-11-20T08:00:00Z cause -",
    ]


def test_runs_as_a_kubectl_plugin(kube: KubeEnv, namespace: str, crd_installed: str) -> None:
    """kubectl finds `kubectl-mlrollout` on PATH and hands it the arguments, as for any plugin."""
    Md(kube, namespace)
    env = kube.env() | {"PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    kubectl = kube.bin_dir / "kubectl"
    out = subprocess.run(
        [str(kubectl), "mlrollout", "status", "churn", "-n", namespace, "--kubeconfig", kube.kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert f"Name:        {namespace}/churn" in out.stdout
    missing = subprocess.run(
        [str(kubectl), "mlrollout", "status", "nope", "-n", namespace, "--kubeconfig", kube.kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert missing.returncode == 1 and "'nope'" in missing.stderr and "not found" in missing.stderr


def test_watch_stops_quietly_on_ctrl_c(kube: KubeEnv, namespace: str, crd_installed: str) -> None:
    md = Md(kube, namespace)
    md.set_status(CANARY)
    argv = [
        str(PLUGIN),
        "watch",
        "churn",
        "-n",
        namespace,
        "--kubeconfig",
        kube.kubeconfig,
        "--interval",
        "0.2",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first line is printed before the first wait
    assert "phase=Progressing" in first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err


def test_wait_reports_what_the_operator_did(kube: KubeEnv, namespace: str, crd_installed: str) -> None:
    md = Md(kube, namespace)
    md.set_status(CANARY)
    nobody = md.plugin("promote", "churn", "--wait", "1")
    assert nobody.returncode == 3 and "has not acted on request" in nobody.stderr
    request = json.loads(md.annotations()[names.ANNOTATION_REQUEST])

    argv = [str(PLUGIN), "promote", "churn", "-n", namespace, "--kubeconfig", kube.kubeconfig, "--wait", "60"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "already requested" in proc.stdout.readline()  # the same request, still pending
    applied = {
        "type": "Request",
        "status": "True",
        "reason": "Applied",
        "message": f"request {request['id']} (promote) applied",
        "lastTransitionTime": "2026-11-23T08:01:00Z",
    }
    rollout = {**CANARY["rollout"], "handledRequest": request["id"]}  # type: ignore[dict-item]
    md.set_status({**CANARY, "rollout": rollout, "conditions": [applied]})  # as the operator would
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"promote applied by the operator (request {request['id']})" in out
