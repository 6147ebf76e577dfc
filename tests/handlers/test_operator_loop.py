"""The whole loop on real parts, the seed's telecom churn scenario (harness.churn_loop): the real
control plane, the operator, MLflow, Prometheus, the real runtime serving through each Service, and
every Job run for real by the pod runner: the monitor's (started by the CronJob controller on its
every-minute schedule, nobody triggers it), the built-in trainer's and the gate's.

One operator and one namespace carry three ModelDeployments side by side (setup paid once):
- `churn`: customers of a new era arrive through the Service; the monitor flags drift on the stable
  version; the operator trains, the new version passes its ROC AUC and segment-precision gates, goes
  through a canary and is promoted; the next monitor run, on the new version, finds no drift.
- `benign`: input drift (age only) under a policy that retrains only when accuracy also drops; the
  labels posted to /feedback say it did not: no training.
- `broken`: a release that answers 500s is rolled back by its canary analysis; it never trains.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_support import LIVE_WITHIN, Cluster, OperatorProcess, Registry, eventually, unique

from harness.churn_loop import (
    AUC_FLOOR,
    SEGMENT,
    SEGMENT_PRECISION_FLOOR,
    LoopData,
    Timeline,
    customers,
    label_of,
    loop_data,
    loop_spec,
    register_first,
    row_maker,
)
from harness.kube import KubeEnv
from harness.load import Load
from harness.models import register_faulty, set_alias
from harness.podnet import PodNetwork
from harness.services import MLflowServer, Prometheus
from harness.traffic import cluster_ip
from mlrollout.adapters.k8s.monitor import monitor_name
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names

# The module's fixture (three ModelDeployments Healthy) is paid by the first test: its budget too.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

IMAGE = "mlrollout.local/mlrollout-runtime:dev"  # executed for real by the pod runner
REPO = Path(__file__).resolve().parents[2]
PLUGIN = Path(sys.executable).parent / "kubectl-mlrollout"
ACCURACY_FLOOR = 0.7


@dataclass
class Loop:
    cluster: Cluster
    registry: Registry
    operator: OperatorProcess
    data: LoopData
    models: dict[str, str]  # ModelDeployment -> registered model
    first: dict[str, str]  # ModelDeployment -> its first version

    def status(self, md: str) -> dict[str, Any]:
        return (self.cluster.get_md(md) or {}).get("status") or {}

    def address(self, md: str) -> str:
        return f"{cluster_ip(self.cluster.kube, self.cluster.namespace, names.service_name(md))}:80"

    def jobs(self) -> list[dict[str, Any]]:
        found: dict[str, Any] = self.cluster.objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "batch", "v1", self.cluster.namespace, "jobs"
        )
        return list(found["items"])

    def training_jobs(self, md: str) -> list[str]:
        prefix = f"{md}-train-"
        return [j["metadata"]["name"] for j in self.jobs() if j["metadata"]["name"].startswith(prefix)]

    def plugin(self, *args: str) -> str:
        done = subprocess.run(
            [str(PLUGIN), *args, "-n", self.cluster.namespace, "--kubeconfig", self.cluster.kube.kubeconfig],
            capture_output=True,
            text=True,
            timeout=LIVE_WITHIN,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def monitored(loop: Loop, md: str, version: str, verdict: str, after: str = "") -> dict[str, Any]:
    """status.monitoring once a run newer than `after` gave `verdict` about `version`."""
    m = loop.status(md).get("monitoring") or {}
    fresh = (m.get("lastRun") or "") > after
    return m if fresh and m.get("version") == version and m.get("verdict") == verdict else {}


@pytest.fixture(scope="module")
def loop(
    kube: KubeEnv,
    crd_installed: str,
    mlflow_server: MLflowServer,
    prometheus: Prometheus,
    session_dir: Path,
    pod_network: PodNetwork | None,
) -> Iterator[Loop]:
    if pod_network is None:
        pytest.skip("needs the pod network: the Services route to pod addresses")
    namespace = kube.create_namespace("loop")
    cluster = Cluster(kube, namespace)
    kube.kubectl("apply", "-k", str(REPO / "manifests" / "job-serviceaccount"), "-n", namespace, check=True)
    registry = Registry(mlflow_server.uri)
    with loop_data() as data:
        before = customers(1500, 1, "before")
        models = {md: unique(md) for md in ("churn", "benign", "broken")}
        first = {
            md: register_first(registry.uri, model, before, data.reference) for md, model in models.items()
        }
        for md, model in models.items():
            for alias in ("champion", "challenger"):
                set_alias(registry.uri, model, alias, first[md])
        operator = OperatorProcess(kube, namespace, session_dir / f"operator-{namespace}.log").start()
        try:
            cluster.create_md("churn", loop_spec(models["churn"], registry.uri, IMAGE, data))
            benign_policy = {
                "cooldown": "1h",
                "minSamples": 200,
                "confirm": {"performance": {"metric": "accuracy", "below": ACCURACY_FLOOR, "minSamples": 50}},
            }
            accuracy = {"metric": "accuracy", "min": ACCURACY_FLOOR, "labelDelay": "0s", "minSamples": 50}
            cluster.create_md(
                "benign",
                loop_spec(
                    models["benign"],
                    registry.uri,
                    IMAGE,
                    data,
                    drift_trigger=benign_policy,
                    performance=accuracy,
                ),
            )
            broken = loop_spec(
                models["broken"],
                registry.uri,
                IMAGE,
                data,
                canary_steps=[{"setWeight": 50}, {"analysis": {"count": 3}}, {"setWeight": 100}],
                analysis={
                    "prometheus": {"address": prometheus.url},
                    "interval": "5s",
                    "minRequests": 5,
                    "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
                },
            )
            broken["model"]["alias"] = "challenger"  # the release under test; champion moves on promotion
            broken["serving"]["allowCode"] = True  # the faulty release is a pyfunc logged as code
            del broken["validation"]  # no gate: the fault shows only under live traffic
            cluster.create_md("broken", broken)
            env = Loop(cluster, registry, operator, data, models, first)
            eventually(
                lambda: all(env.status(md).get("phase") == "Healthy" for md in models),
                300,
                "the three ModelDeployments Healthy on their first version",
            )
            yield env
        finally:
            operator.stop()
            kube.delete_namespace(namespace)


def test_benign_drift_under_a_performance_policy_does_not_retrain(loop: Loop) -> None:
    md, v1 = "benign", loop.first["benign"]
    address = loop.address(md)
    make, rng = row_maker("before", benign_shift=2.0), random.Random(5)
    rows = [make(rng) for _ in range(400)]
    sent = 0
    for i in range(0, len(rows), 10):
        chunk = rows[i : i + 10]
        request_id = eventually(lambda c=chunk: predict(address, c), 60, "the Service to answer")
        post(f"http://{address}/feedback", {"request_id": request_id, "label": [label_of(r) for r in chunk]})
        sent += len(chunk)

    def drift_with_labels() -> dict[str, Any]:
        m = monitored(loop, md, v1, "Drift")
        return m if (m.get("labelledSamples") or 0) >= 50 else {}

    m = eventually(drift_with_labels, 240, "a Drift verdict with the labels joined (CronJob every minute)")
    assert sorted(c["column"] for c in m["columns"] if c["drifted"]) == ["age", "monthly_spend"]
    assert m["performance"]["accuracy"] >= ACCURACY_FLOOR, m["performance"]
    # The next run finds the same: still no training (the operator judged twice on fresh evidence).
    eventually(lambda: monitored(loop, md, v1, "Drift", after=m["lastRun"]), 150, "the next monitor run")
    status = loop.status(md)
    assert loop.training_jobs(md) == []
    assert (status.get("retraining") or {}).get("state", "Idle") == "Idle", status.get("retraining")
    assert status["phase"] == "Healthy" and status["stableVersion"] == v1
    assert condition(status, "Drift")["reason"] == "DriftDetected"


def test_a_release_that_breaks_serving_is_rolled_back_and_never_retrains(loop: Loop) -> None:
    md, v1 = "broken", loop.first["broken"]
    model = loop.models[md]
    bad = register_faulty(loop.registry.uri, model, "errors")
    with Load(loop.address(md), row=row_maker("before"), period=0.1, workers=1):
        set_alias(loop.registry.uri, model, "challenger", bad)
        eventually(lambda: loop.status(md).get("phase") == "RolledBack", 300, "the rollback")
        rolled_back = loop.status(md)
        # a monitor run after the rollback, about stable: the monitor keeps watching, nothing trains
        before = (rolled_back.get("monitoring") or {}).get("lastRun") or ""
        eventually(lambda: monitored(loop, md, v1, "NoDrift", after=before), 150, "a monitor run after it")
    status = loop.status(md)
    assert status["stableVersion"] == v1 and status["phase"] == "RolledBack"
    assert "error-rate" in (status["rollout"].get("lastOutcome") or ""), status["rollout"]
    assert loop.training_jobs(md) == []
    untouched = {"attempt": 0, "failures": 0, "state": "Idle"}  # what a never-used record looks like
    assert status.get("retraining") in (None, untouched), status.get("retraining")
    assert rolled_back.get("retraining") in (None, untouched)
    reasons = [r for _, r, _ in loop.cluster.events(md)]
    assert "CandidateRolledBack" in reasons and "RetrainingStarted" not in reasons, reasons
    history = loop.plugin("history", md)
    assert "error-rate" in history, history


def test_drift_is_retrained_gated_canaried_and_promoted_then_the_monitor_clears_it(loop: Loop) -> None:
    md, v1 = "churn", loop.first["churn"]
    model = loop.models[md]
    batch = client.BatchV1Api(loop.cluster.kube.api_client())
    with (
        Timeline(lambda: loop.status(md)) as timeline,
        Load(loop.address(md), row=row_maker("after"), period=0.1, workers=1) as load,
    ):
        drift = eventually(lambda: monitored(loop, md, v1, "Drift"), 300, "the monitor to flag drift")
        assert {"tenure", "monthly_spend"} <= {c["column"] for c in drift["columns"] if c["drifted"]}
        eventually(lambda: loop.training_jobs(md) == [f"{md}-train-1"], 120, "the training Job")

        def promoted() -> bool:
            status = loop.status(md)
            return status.get("phase") == "Healthy" and status.get("stableVersion") not in (None, v1)

        eventually(promoted, 900, "the retrained version promoted")
        status = loop.status(md)
        v2 = status["stableVersion"]
        # the verdict about v1 no longer stands: v2 waits for its first run, then has no drift
        assert condition(status, "Drift")["reason"] in ("AwaitingFirstRun", "NoDrift"), condition(
            status, "Drift"
        )
        clean = eventually(lambda: monitored(loop, md, v2, "NoDrift"), 240, "the monitor's run on v2")
    # every request was answered, by v1, the canary or v2 (0: kube-proxy between pods, never a model)
    assert all(code in (200, 0) for code in load.counts()), load.counts()
    assert load.counts().get(200, 0) > 10 * load.counts().get(0, 0), load.counts()
    # the operator turns the monitor's verdict into the condition on its next tick
    eventually(lambda: condition(loop.status(md), "Drift").get("reason") == "NoDrift", 60, "Drift=NoDrift")
    status = loop.status(md)
    assert status["stableVersion"] == v2 and status["phase"] == "Healthy"
    assert clean["samples"] >= 1

    # the path it took, with the causes
    phases = timeline.phases()
    for a, b in (("Healthy", "Retraining"), ("Retraining", "Validating"), ("Validating", "Progressing")):
        assert a in phases and b in phases and phases.index(a) < phases.index(b), phases
    assert phases[-1] == "Healthy"
    canaries = [s for s in timeline.statuses if s.get("canaryVersion") == v2]
    assert canaries and all((s.get("weights") or {}).get("canary", 0) < 100 for s in canaries[:1])
    retraining = status["retraining"]
    assert (
        retraining["state"] == "Trained" and retraining["trigger"] == "drift" and retraining["version"] == v2
    )
    assert "tenure" in retraining["reason"], retraining
    assert status["history"][-1]["cause"] == "retrain:drift", status["history"]

    # the gate judged v2 on the real holdout; the registry has its lineage; nobody trusted types by hand
    tags = loop.registry.tags(model, v2)
    assert tags["mlrollout.gate"] == "passed", tags
    assert tags["mlrollout.parent_version"] == v1 and tags["mlrollout.trigger"].startswith("drift")
    assert tags["mlrollout.skops_types"] == "numpy.dtype"
    assert loop.registry.alias(model, "champion") == v2
    spec = (loop.cluster.get_md(md) or {})["spec"]
    assert "trustedTypes" not in spec["serving"]
    gates = [
        g for s in timeline.statuses if (g := (s.get("rollout") or {}).get("gate") or {}).get("version") == v2
    ]
    passed = next(g for g in gates if g.get("phase") == "Passed")
    checks = {c["name"]: c for c in passed["checks"]}
    auc, precision = checks["metric:roc_auc"], checks[f"metric:precision[{SEGMENT}]"]
    assert auc["verdict"] == "passed" and auc["value"] >= AUC_FLOOR == auc["threshold"], auc
    assert precision["verdict"] == "passed" and precision["value"] >= SEGMENT_PRECISION_FLOOR, precision

    # the monitor ran from its CronJob only (no manual Job); one training, one gate for v2
    monitor = monitor_name(Owner(name=md, namespace="", uid=""))
    owned = [
        j
        for j in batch.list_namespaced_job(loop.cluster.namespace).items
        if any(o.kind == "CronJob" and o.name == monitor for o in j.metadata.owner_references or [])
    ]
    assert owned and all(
        "cronjob.kubernetes.io/instantiate" not in (j.metadata.annotations or {}) for j in owned
    )
    assert loop.training_jobs(md) == [f"{md}-train-1"]
    reasons = [r for _, r, _ in loop.cluster.events(md)]
    for reason in ("DriftDetected", "RetrainingStarted", "Retrained", "Promoted", "NoDrift"):
        assert reason in reasons, reasons
    assert reasons.count("RetrainingStarted") == 1

    history = loop.plugin("history", md)
    print(history)
    assert "retrain" in history and "drift" in history, history


def predict(address: str, rows: list[dict[str, float]]) -> str:
    body = json.dumps({"dataframe_records": rows}).encode()
    request = urllib.request.Request(
        f"http://{address}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as r:
        return str(r.headers.get("x-request-id", ""))


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15):
        pass
