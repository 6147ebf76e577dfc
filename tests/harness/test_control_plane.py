"""Proof that the harness's real parts behave like a cluster: schema, controllers, runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from harness.kube import KubeEnv
from harness.procs import eventually

pytestmark = pytest.mark.integration

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.harness.mlrollout.io"},
    "spec": {
        "group": "harness.mlrollout.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def job(name: str, image: str, script: str, **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": image, "command": ["python3", "-c", script], **pod}
                    ],
                }
            },
        },
    }


def test_crd_schema_rejects_invalid_object(kube: KubeEnv, namespace: str) -> None:
    kube.apply(WIDGET_CRD)
    kube.wait_established("widgets.harness.mlrollout.io")
    bad = {
        "apiVersion": "harness.mlrollout.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 150},
    }
    r = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad))
    assert r.returncode != 0
    assert "spec.size" in r.stderr and "less than or equal to 10" in r.stderr
    good = {**bad, "spec": {"size": 3}}
    kube.apply(good, namespace)


def test_deployment_pods_become_running_and_ready(kube: KubeEnv, namespace: str) -> None:
    apps: Any = client.AppsV1Api(kube.api_client())
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    eventually(
        lambda: (apps.read_namespaced_deployment("web", namespace).status.ready_replicas or 0) == 3,
        what="3 ready replicas",
    )
    core: Any = client.CoreV1Api(kube.api_client())
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert [p.status.phase for p in pods] == ["Running"] * 3
    assert all(p.spec.node_name for p in pods), "the real scheduler bound every pod"


def _job_condition(kube: KubeEnv, namespace: str, name: str) -> str | None:
    batch: Any = client.BatchV1Api(kube.api_client())
    j = batch.read_namespaced_job(name, namespace)
    for c in j.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def _pod_of(kube: KubeEnv, namespace: str, job_name: str) -> Any:
    pods = (
        client.CoreV1Api(kube.api_client())
        .list_namespaced_pod(namespace, label_selector=f"job-name={job_name}")
        .items
    )
    assert len(pods) == 1
    return pods[0]


def test_runner_executes_job_and_reports_termination_message(kube: KubeEnv, namespace: str) -> None:
    script = (
        "import json, os, pathlib\n"
        "pathlib.Path('/dev/termination-log').write_text(json.dumps("
        "{'pod': os.environ['POD_NAME'], 'greeting': os.environ['GREETING']}))\n"
    )
    env = [
        {"name": "GREETING", "value": "hello $(POD_NAME)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    # POD_NAME is defined after GREETING, so $(POD_NAME) stays literal, as in a kubelet.
    kube.apply(job("ok", "mlrollout.local/exec:test", script, env=env), namespace)
    assert eventually(lambda: _job_condition(kube, namespace, "ok"), what="job to finish") == "Complete"
    pod = _pod_of(kube, namespace, "ok")
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0
    assert json.loads(term.message) == {"pod": pod.metadata.name, "greeting": "hello $(POD_NAME)"}


def test_runner_reports_failed_job(kube: KubeEnv, namespace: str) -> None:
    script = "import sys; print('boom'); sys.exit(1)"
    kube.apply(
        job("bad", "mlrollout.local/exec:test", script, terminationMessagePolicy="FallbackToLogsOnError"),
        namespace,
    )
    assert eventually(lambda: _job_condition(kube, namespace, "bad"), what="job to finish") == "Failed"
    term = _pod_of(kube, namespace, "bad").status.container_statuses[0].state.terminated
    assert term.exit_code == 1 and "boom" in term.message


def test_kwok_completes_jobs_it_fakes(kube: KubeEnv, namespace: str) -> None:
    kube.apply(job("fake", "busybox:1.36", "unused"), namespace)
    assert eventually(lambda: _job_condition(kube, namespace, "fake"), what="job to finish") == "Complete"
