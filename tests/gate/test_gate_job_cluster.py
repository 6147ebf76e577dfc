"""The gate Job on the real control plane: built by gate_job, run for real by the pod runner (the
`mlrollout gate` console script as a local process), its termination message read back by
read_gate_result. Holdout and training data live in a real S3-compatible server, and the pods get
its credentials the way serving pods get registry credentials (envFrom the credentials Secret).

All Jobs of one scenario table are applied at once and awaited together: CPU is scarce.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from churn import HIGH_RISK, TARGET

from conftest import ChurnModels
from harness.kube import KubeEnv, wait_jobs_finished
from harness.s3 import S3Server
from mlrollout.adapters.k8s.jobs import gate_job, read_gate_result
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api.gate import GateReport
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.spec import ModelDeploymentSpec

pytestmark = [pytest.mark.integration, pytest.mark.services]
IMAGE = "mlrollout.local/runtime:test"
SECRET = "registry-credentials"
AUC = {"name": "roc_auc", "min": 0.84}


def md_spec(
    models: ChurnModels, validation: dict[str, Any], champion: str = "champion", allow_code: bool = False
) -> dict[str, Any]:
    return {
        "model": {"name": models.name, "alias": "challenger"},
        "registry": {
            "trackingUri": models.tracking_uri,
            "championAlias": champion,
            "credentialsSecret": SECRET,
        },
        "serving": {"image": IMAGE, **({"allowCode": True} if allow_code else {})},
        "validation": {"timeout": "5m", "backoffLimit": 0, **validation},
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }


@pytest.fixture
def s3_data(s3_server: S3Server, churn_models: ChurnModels) -> dict[str, str]:
    bucket = s3_server.bucket(f"holdouts-{uuid.uuid4().hex[:6]}")
    return {
        "holdout": s3_server.put(bucket, "churn/holdout.parquet", churn_models.holdout.read_bytes()),
        "train": s3_server.put(bucket, "churn/train.parquet", churn_models.train.read_bytes()),
        "missing": f"s3://{bucket}/churn/missing.parquet",
    }


def test_gate_jobs_pass_reject_and_error_on_the_cluster(
    kube: KubeEnv,
    namespace: str,
    crd_installed: str,
    churn_models: ChurnModels,
    s3_server: S3Server,
    s3_data: dict[str, str],
) -> None:
    m, ns = churn_models, namespace
    holdout = {"uri": s3_data["holdout"], "target": TARGET}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": s3_server.env(),
        },
        ns,
    )
    # A real owner (the API server accepts the new validation fields); no operator runs here.
    full = {
        "dataset": holdout,
        "metrics": [AUC, {"name": "precision", "min": 0.7, "segment": HIGH_RISK}],
        "championChallenger": {"metric": "roc_auc", "minDelta": 0.0},
        "leakage": {"enabled": True, "trainingDataUri": s3_data["train"]},
        "fairness": {"sensitiveFeatures": ["gender"], "max": 0.1},
        "signature": {"enabled": True},
        "latency": {"p99Ms": 1000, "requests": 20},
    }
    kube.apply(
        {
            "apiVersion": "mlrollout.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "churn"},
            "spec": md_spec(m, full, champion="baseline"),
        },
        ns,
    )
    uid = kube.get_json("modeldeployment", "churn", "-n", ns)["metadata"]["uid"]
    owner = Owner("churn", ns, uid)
    scenarios: dict[str, tuple[str, dict[str, Any], str]] = {
        # kind, validation, champion alias
        "passing": ("good", full, "baseline"),
        "auc-below-floor": ("poor", {"dataset": holdout, "metrics": [AUC]}, "champion"),
        "not-better-than-champion": (
            "weaker",
            {"dataset": holdout, "metrics": [AUC], "championChallenger": {"metric": "roc_auc"}},
            "champion",
        ),
        "leaky": (
            "leaky",
            {
                "dataset": holdout,
                "metrics": [AUC],
                "leakage": {"enabled": True, "trainingDataUri": s3_data["train"]},
            },
            "champion",
        ),
        "unfair": (
            "unfair",
            {"dataset": holdout, "fairness": {"sensitiveFeatures": ["gender"], "max": 0.1}},
            "champion",
        ),
        "slow": (
            "slow",
            {"dataset": holdout, "metrics": [AUC], "latency": {"p99Ms": 250, "requests": 10}},
            "champion",
        ),
        "code-not-allowed": ("slow", {"dataset": holdout, "metrics": [AUC]}, "champion"),
        "missing-dataset": (
            "good",
            {"dataset": {**holdout, "uri": s3_data["missing"]}, "metrics": [AUC]},
            "champion",
        ),
        "empty-segment": (
            "good",
            {
                "dataset": holdout,
                "metrics": [{"name": "precision", "min": 0.7, "segment": "contract == 'lifetime'"}],
            },
            "champion",
        ),
        "deadline": ("good", {"dataset": holdout, "metrics": [AUC], "timeout": "1s"}, "champion"),
    }
    jobs: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for scenario, (kind, validation, champion) in scenarios.items():
        # The slow model is a models-from-code pyfunc: it loads only where spec.serving.allowCode says so.
        spec = ModelDeploymentSpec.model_validate(md_spec(m, validation, champion, scenario == "slow"))
        # the same version gated again is a new attempt: a new Job name
        attempts[kind] = attempts.get(kind, 0) + 1
        manifest = gate_job(owner, spec, m.name, m.versions[kind], attempts[kind], IMAGE)
        kube.apply(manifest, ns)
        jobs[scenario] = manifest["metadata"]["name"]
    assert jobs["passing"] == f"churn-gate-{m.versions['good']}-1"

    results = wait_jobs_finished(kube, ns, list(jobs.values()), read_gate_result, JobRunning, timeout=480)
    by = {scenario: results[name] for scenario, name in jobs.items()}

    def report(scenario: str) -> tuple[GateReport, dict[str, Any]]:
        r = by[scenario]
        assert isinstance(r, GateReport), f"{scenario}: {r}"
        return r, {c.name: c for c in r.checks}

    rep, checks = report("passing")
    assert rep.outcome == "passed", rep
    assert {c.verdict for c in checks.values()} == {"passed"}
    assert len(checks) == 8 and checks[f"metric:precision[{HIGH_RISK}]"].value >= 0.7

    rep, checks = report("auc-below-floor")
    assert rep.outcome == "failed" and checks["metric:roc_auc"].verdict == "failed"
    assert checks["metric:roc_auc"].value < 0.84 and checks["metric:roc_auc"].threshold == 0.84

    rep, checks = report("not-better-than-champion")
    assert rep.outcome == "failed"
    assert checks["metric:roc_auc"].verdict == "passed"  # good enough on its own...
    assert (
        checks["champion:roc_auc"].verdict == "failed" and checks["champion:roc_auc"].value < 0
    )  # ...not better

    rep, checks = report("leaky")
    assert checks["leakage:overlap"].verdict == "passed", rep
    assert rep.outcome == "failed" and checks["metric:roc_auc"].verdict == "passed"
    assert checks["leakage:target-association"].verdict == "failed"
    assert "churn_flag" in (checks["leakage:target-association"].message or "")

    rep, checks = report("unfair")
    assert rep.outcome == "failed"
    assert checks["fairness:demographic_parity_difference"].verdict == "failed"
    assert checks["fairness:demographic_parity_difference"].value > 0.1

    rep, checks = report("slow")
    assert rep.outcome == "failed", rep
    assert checks["metric:roc_auc"].verdict == "passed"
    assert checks["latency:p99"].verdict == "failed" and checks["latency:p99"].value >= 500  # it sleeps 0.5 s

    rep, _ = report("code-not-allowed")
    assert rep.outcome == "error" and "allowCode" in (rep.reason or ""), rep

    rep, _ = report("missing-dataset")
    assert rep.outcome == "error" and "does not exist" in (rep.reason or ""), rep

    rep, _ = report("empty-segment")
    assert rep.outcome == "error" and "selects no rows" in (rep.reason or ""), rep
    job = kube.get_json("job", jobs["empty-segment"], "-n", ns)
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "PodFailurePolicy"  # bad input: no retry

    deadline = by["deadline"]
    assert isinstance(deadline, JobCouldNotRun) and deadline.reason == "DeadlineExceeded", deadline

    # Whatever the gate says, the pod could never have written the ModelDeployment.
    for verb, resource in (("patch", "modeldeployments"), ("patch", "modeldeployments/status")):
        r = kube.kubectl(
            "auth", "can-i", verb, resource, "-n", ns, f"--as=system:serviceaccount:{ns}:default"
        )
        assert r.stdout.strip() == "no", (verb, resource, r.stdout, r.stderr)
