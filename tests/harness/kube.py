"""What a test sees of a cluster: the harness's own control plane or any cluster from KUBECONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config


@dataclass
class KubeEnv:
    kubeconfig: str
    bin_dir: Path
    external: bool = False  # True on a full cluster (kind...), where a real kubelet runs pods
    control_plane: Any = None  # the harness's ControlPlane (None on an external cluster)

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient (typed Any: the client's models are loosely typed)."""
        return config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        kubectl = self.bin_dir / "kubectl"
        r = subprocess.run(
            [str(kubectl) if kubectl.exists() else "kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    def get_json(self, *args: str) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json", check=True).stdout)

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> None:
        self.kubectl(
            "apply", *(["-n", namespace] if namespace else []), "-f", "-", input=json.dumps(obj), check=True
        )

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Poll, since `kubectl wait` errors out while the CRD has no conditions at all yet."""
        deadline = time.monotonic() + timeout
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        while time.monotonic() < deadline:
            if self.kubectl("get", "crd", crd, "-o", f"jsonpath={jsonpath}").stdout.strip() == "True":
                return
            time.sleep(0.2)
        raise AssertionError(f"CRD {crd} not Established after {timeout:.0f}s")

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (operator, helm) that talks to this cluster."""
        return dict(os.environ, KUBECONFIG=self.kubeconfig)

    def create_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        api: Any = client.CoreV1Api(self.api_client())
        api.create_namespace({"metadata": {"name": name, "labels": {"mlrollout.io/test": "true"}}})
        return name

    def delete_namespace(self, name: str) -> None:
        api: Any = client.CoreV1Api(self.api_client())
        try:
            api.delete_namespace(name, propagation_policy="Background")
        except client.exceptions.ApiException as e:
            if e.status != 404:
                raise


R = TypeVar("R")


def wait_jobs_finished(
    kube: KubeEnv,
    namespace: str,
    names: list[str],
    read: Callable[[Mapping[str, Any], list[Mapping[str, Any]]], R],
    running: type,
    timeout: float,
) -> dict[str, R]:
    """Each Job's result as `read(job, pods)` parses it (the operator's own parser), once it is no longer
    an instance of `running`."""
    results: dict[str, R] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(results) < len(names):
        for name in names:
            if name in results:
                continue
            job = kube.get_json("job", name, "-n", namespace)
            selector = f"batch.kubernetes.io/job-name={name}"
            pods = kube.get_json("pods", "-n", namespace, "-l", selector)["items"]
            result = read(job, pods)
            if not isinstance(result, running):
                results[name] = result
        time.sleep(2)
    missing = sorted(set(names) - set(results))
    assert not missing, f"Jobs still running after {timeout:.0f}s: {missing}"
    return results


def external_kubeconfig() -> str | None:
    """MLROLLOUT_USE_KUBECONFIG=1 runs the integration tests against $KUBECONFIG (e.g. kind)."""
    if os.environ.get("MLROLLOUT_USE_KUBECONFIG") == "1":
        path = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        return path
    return None
