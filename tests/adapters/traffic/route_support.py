"""Shared by the route routers' cluster tests: a real ModelDeployment (no operator running, so its
children stay theirs), echo pods on its tracks, and reads of the user's route object."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from harness.kube import KubeEnv
from harness.traffic import echo_deployment
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names


def md_spec(traffic: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {"name": "m", "version": "1"},
        "registry": {"trackingUri": "http://mlflow.invalid:5000"},
        "serving": {"image": "example.invalid/runtime:1", "replicas": 2},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
        "traffic": traffic,
    }


def create_md(kube: KubeEnv, namespace: str, name: str, spec: dict[str, Any]) -> Owner:
    kube.apply(
        {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name}, "spec": spec},
        namespace,
    )
    api = client.CustomObjectsApi(kube.api_client())
    md: Any = api.get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, name)
    return Owner(name, namespace, md["metadata"]["uid"])


def echo_track(owner: Owner, track: str, replicas: int) -> dict[str, Any]:
    """Echo pods labelled as the operator labels a track, answering {"track": track}, port named http."""
    labels = {names.LABEL_DEPLOYMENT: owner.name, names.LABEL_TRACK: track}
    dep = echo_deployment(f"echo-{track}", replicas, labels)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": names.SERVING_PORT_NAME, "containerPort": 8080}]
    container["env"] = [{"name": "ECHO_TRACK", "value": track}]
    return dep


def read(kube: KubeEnv, group: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
    api: Any = client.CustomObjectsApi(kube.api_client())
    found: dict[str, Any] = api.get_namespaced_custom_object(group, "v1", namespace, plural, name)
    return found
