"""Helpers for running the real operator as a subprocess against the harness's control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from harness.kube import KubeEnv
from harness.procs import free_port, tail
from mlrollout.api import names

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "mlrollout.io_modeldeployments.yaml"
OPERATOR = Path(sys.executable).parent / "mlrollout-operator"

# Seconds for a process to start: the suite runs modules side by side on two cores (imports alone
# take 5-10 s of CPU there).
LIVE_WITHIN = 180


@dataclass
class OperatorProcess:
    """One operator, watching one namespace; kill() is a SIGKILL: no cleanup, no goodbye."""

    kube: KubeEnv
    namespace: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self, attempts: int = 3) -> OperatorProcess:
        env = (
            self.kube.env()
            | {
                "MLROLLOUT_NAMESPACES": self.namespace,
                "MLROLLOUT_HEALTH_HOST": "127.0.0.1",
                "MLROLLOUT_HEALTH_PORT": str(self.port),
                "MLROLLOUT_HEARTBEAT_SECONDS": "1",
                # Tests move aliases without webhooks: the operator reads them again within a second.
                "MLROLLOUT_REGISTRY_RESYNC_SECONDS": "1",
                "MLROLLOUT_VERBOSE": "1",
                "PYTHONUNBUFFERED": "1",
            }
            | self.extra_env
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(OPERATOR)], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + LIVE_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if attempts > 1 and "address already in use" in tail(self.log, 3):
                    # free_port() only finds a port free; a process beside ours may bind it first.
                    self.port = free_port()
                    return self.start(attempts - 1)
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{tail(self.log, 40)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"operator not live within {LIVE_WITHIN} s:\n{tail(self.log, 40)}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the operator's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Registry:
    """Registers models on the real MLflow server (the source URI is never downloaded by the operator)."""

    uri: str

    def register(self, name: str, versions: int = 1, alias: str | None = None) -> str:
        from mlflow import MlflowClient

        mlflow = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        mlflow.create_registered_model(name)
        for _ in range(versions):
            mlflow.create_model_version(name, source="s3://bucket/models/m")
        if alias:
            mlflow.set_registered_model_alias(name, alias, "1")
        return name

    def alias(self, name: str, alias: str) -> str:
        from mlflow import MlflowClient

        found = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri).get_model_version_by_alias(
            name, alias
        )
        return str(found.version)

    def tags(self, name: str, version: str) -> dict[str, str]:
        from mlflow import MlflowClient

        found = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri).get_model_version(name, version)
        return dict(found.tags)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=self.uri, registry_uri=self.uri).set_registered_model_alias(
            name, alias, version
        )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Cluster:
    """Small typed helpers over the API for the operator tests."""

    kube: KubeEnv
    namespace: str

    @property
    def objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.kube.api_client())

    def create_md(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": name}, "spec": spec}
        self.objects.create_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, body
        )

    def get_md(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.objects.get_namespaced_custom_object(  # type: ignore[assignment]
                names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
            )
            return found
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_md(self, name: str, patch: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            self.namespace,
            names.PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def delete_md(self, name: str) -> None:
        self.objects.delete_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
        )

    def deployments(self, md: str) -> list[dict[str, Any]]:
        found: dict[str, Any] = self.objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "apps", "v1", self.namespace, "deployments", label_selector=f"{names.LABEL_DEPLOYMENT}={md}"
        )
        return list(found["items"])

    def services(self, md: str) -> list[Any]:
        core = client.CoreV1Api(self.kube.api_client())
        return list(
            core.list_namespaced_service(
                self.namespace, label_selector=f"{names.LABEL_DEPLOYMENT}={md}"
            ).items
        )

    def events(self, md: str) -> list[tuple[str, str, str]]:
        found: dict[str, Any] = self.objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "events.k8s.io", "v1", self.namespace, "events", field_selector=f"regarding.name={md}"
        )
        items = sorted(found["items"], key=lambda e: e.get("eventTime") or "")
        return [(e["type"], e["reason"], e.get("note", "")) for e in items]


def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")
