"""Canary on real parts: MLflow holds the versions, the pod runner executes the real serving
processes, real Prometheus scrapes them, load goes to the Service (kube-proxy picks the pod), and
the operator's analysis decides: a good candidate is promoted (the champion alias moves), a
candidate that fails on a share of requests is rolled back by itself (the alias stays), and
`kubectl mlrollout undo` returns to the previous version."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness.traffic import cluster_ip

pytestmark = pytest.mark.integration

RUNTIME_IMAGE = "mlrollout.local/mlrollout-runtime:dev"
PLUGIN = Path(sys.executable).parent / "kubectl-mlrollout"

FLAKY_CODE = '''
import numpy as np
import mlflow
from mlflow.pyfunc import PythonModel


class Flaky(PythonModel):
    """A bad release: right answers, except that it raises on every row with a negative x2."""

    def predict(self, context, model_input, params=None):
        x = model_input.to_numpy(dtype=float)
        if (x[:, 2] < 0).any():
            raise ValueError("broken feature pipeline")
        return (x[:, 0] + x[:, 1] > 0).astype(int)


mlflow.models.set_model(Flaky())
'''


def register_forest(tracking_uri: str, name: str) -> str:
    import mlflow
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y),
            name="model",
            registered_model_name=name,
            input_example=x[:2],
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    return str(info.registered_model_version)


def register_flaky(tracking_uri: str, name: str, workdir: Path) -> str:
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    code = workdir / "flaky.py"
    code.write_text(FLAKY_CODE)
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                signature=infer_signature(np.zeros((2, 3)), np.zeros(2)),
                registered_model_name=name,
            )
    return str(info.registered_model_version)


class Load:
    """Requests to the Service's ClusterIP from the host, until stopped; counts answers by code."""

    def __init__(self, url: str) -> None:
        self.url, self.codes = url, Counter[int]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rows = [[1.0, 1.0, 0.5], [-1.0, -1.0, -0.5], [2.0, -1.0, 0.2], [0.5, 0.5, -1.0]]
        body = json.dumps({"inputs": rows[:2]}).encode()
        while not self._stop.wait(0.02):
            request = urllib.request.Request(
                self.url, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    self.codes[r.status] += 1
            except urllib.error.HTTPError as e:
                self.codes[e.code] += 1
            except OSError:
                self.codes[0] += 1


def alias_version(registry: Registry, model: str, alias: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(registry.uri).get_model_version_by_alias(model, alias).version)


def version_tags(registry: Registry, model: str, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(registry.uri).get_model_version(model, version).tags)


def test_canary_promotes_a_good_version_rolls_back_a_bad_one_and_undoes(
    operator_factory: Callable[[], OperatorProcess],
    cluster: Cluster,
    registry: Registry,
    prometheus: Any,
    tmp_path: Path,
) -> None:
    model = unique("canary")
    register_forest(registry.uri, model)
    register_forest(registry.uri, model)
    register_flaky(registry.uri, model, tmp_path)
    registry.set_alias(model, "champion", "1")
    registry.set_alias(model, "challenger", "1")
    operator_factory()
    cluster.create_md(
        "churn",
        {
            "model": {"name": model, "alias": "challenger"},
            "registry": {"trackingUri": registry.uri, "championAlias": "champion"},
            "serving": {"image": RUNTIME_IMAGE, "replicas": 2, "trustedTypes": ["sklearn.tree._tree.Tree"]},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
            "analysis": {
                "prometheus": {"address": prometheus.url},
                "interval": "6s",
                "count": 2,
                "minRequests": 5,
                "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
            },
        },
    )

    def status() -> dict[str, Any]:
        return (cluster.get_md("churn") or {}).get("status") or {}

    def reached(check: Callable[[dict[str, Any]], bool]) -> Callable[[], dict[str, Any]]:
        def probe() -> dict[str, Any]:
            now = status()
            assert check(now), f"{now.get('phase')}: {now.get('message')} rollout={now.get('rollout')}"
            return now

        return probe

    eventually(lambda: status().get("phase") == "Healthy", 240, "version 1 serving")
    ip = cluster_ip(cluster.kube, cluster.namespace, "churn")
    with Load(f"http://{ip}/invocations") as load:
        eventually(lambda: load.codes[200] > 20, 60, "answers through the Service")

        # A good candidate: 50 % of the pods, two passing measurements, then promoted.
        registry.set_alias(model, "challenger", "2")
        eventually(
            lambda: status().get("stableVersion") == "2" and status().get("phase") == "Healthy",
            300,
            "version 2 promoted",
        )
        assert alias_version(registry, model, "champion") == "2"
        assert version_tags(registry, model, "2")["mlrollout.rollout"] == "promoted"
        assert [h["version"] for h in status()["history"]] == ["1", "2"]

        # A bad candidate: its pod answers 500 to part of the traffic; the first failing
        # measurement (failureLimit 0) rolls it back and the alias never moves.
        registry.set_alias(model, "challenger", "3")
        eventually(reached(lambda s: s.get("phase") == "RolledBack"), 300, "version 3 rolled back")
        final = status()
        assert final["stableVersion"] == "2" and alias_version(registry, model, "champion") == "2"
        tags = version_tags(registry, model, "3")
        assert tags["mlrollout.rollout"] == "rolled_back" and "error-rate" in tags["mlrollout.rollout.reason"]
        run = final["rollout"]["analysis"]
        assert [m["outcome"] for m in run["history"]][-1] == "fail"
        assert final["rollout"]["abortedVersion"] == "3"
        assert "error-rate" in final["message"] and "max 0.05" in final["message"]
        assert load.codes[500] > 0  # the breach was real traffic through the Service
        events = [(t, r) for t, r, _ in cluster.events("churn")]
        assert ("Warning", "RolledBack") in events and ("Normal", "Promoted") in events

        # undo: back to version 1 through the kubectl plugin.
        undo = subprocess.run(
            [str(PLUGIN), "undo", "churn", "-n", cluster.namespace, "--kubeconfig", cluster.kube.kubeconfig],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert undo.returncode == 0, undo.stderr
        eventually(
            lambda: (
                status().get("stableVersion") == "1" and status().get("phase") in {"RolledBack", "Healthy"}
            ),
            240,
            "undone to version 1",
        )
        assert alias_version(registry, model, "champion") == "1"
        assert version_tags(registry, model, "2")["mlrollout.rollout"] == "rolled_back"
