"""Shadow and A/B tests decided by live evidence on real parts: the real control plane, the operator,
MLflow, serving pods executed by the pod runner and scraped by a real Prometheus, and load sent to
each ModelDeployment's Service (never to a pod).

- Shadow: the stable pods mirror every request to the candidate through their live-config
  ConfigMap (they are not restarted); a candidate that agrees continues into its canary and is
  promoted, one that answers the opposite class is rejected; callers' answers always come from
  stable (the runtime's request ids name the variant that answered).
- A/B: the load posts conversions to /feedback through the same Service at known rates per variant
  (the variant read from the answer's request id); the replica-ratio split is per request. A better
  candidate is promoted; with no effect the test stops without a winner and stable stays.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique
from test_operator_canary import condition, status_of, tracks

from harness.kube import KubeEnv
from harness.load import Answer, Load
from harness.models import register_again, register_faulty, register_trained, set_alias
from harness.procs import tail
from harness.services import MLflowServer, Prometheus
from harness.traffic import cluster_ip
from mlrollout.api import names
from mlrollout.runtime.attribution import variant_of

pytestmark = pytest.mark.integration

RUNTIME_IMAGE = "mlrollout.local/mlrollout-runtime:dev"  # executed for real by the pod runner
CONVERSION = {"stable": 0.2, "canary": 0.6}  # the known effect of the A/B test that has one


def shadow_strategy(prometheus: str, **extra: Any) -> dict[str, Any]:
    return {
        "shadow": {
            "prometheus": {"address": prometheus},
            "mirrorPercent": 100,
            "duration": "20s",
            "minRequests": 40,
            "maxDisagreement": 0.05,
            "maxErrorRate": 0.05,
            **extra,
        }
    }


def ab_strategy(**extra: Any) -> dict[str, Any]:
    return {
        "abTest": {  # Prometheus and the analysis interval from spec.analysis
            "candidateWeight": 50,
            "metric": {"name": "conversion", "kind": "proportion"},
            "minimumDetectableEffect": 0.25,
            "baseline": 0.3,
            "alpha": 0.05,
            "maxDuration": "3m",
            **extra,
        }
    }


def md_spec(model: str, uri: str, prometheus: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": "challenger"},
        "registry": {"trackingUri": uri, "championAlias": "champion"},
        # The inverted release is a pyfunc model logged as code: served only with this opt-in.
        "serving": {"image": RUNTIME_IMAGE, "replicas": 1, "allowCode": True},
        "strategy": strategy,
        "analysis": {
            "prometheus": {"address": prometheus},
            "interval": "5s",
            "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
        },
    }


@dataclass
class Env:
    cluster: Cluster
    registry: Registry
    operator: OperatorProcess
    models: dict[str, str]

    def address(self, md: str) -> str:
        return f"{cluster_ip(self.cluster.kube, self.cluster.namespace, names.service_name(md))}:80"


@pytest.fixture(scope="module")
def env(
    kube: KubeEnv, crd_installed: str, mlflow_server: MLflowServer, prometheus: Prometheus, session_dir: Path
) -> Iterator[Env]:
    namespace = kube.create_namespace("xp")
    cluster = Cluster(kube, namespace)
    registry = Registry(mlflow_server.uri)
    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}]
    strategies = {
        "agrees": shadow_strategy(prometheus.url, continueWith={"steps": steps}),
        "disagrees": shadow_strategy(prometheus.url),
        "better": ab_strategy(),
        "same": ab_strategy(alpha=0.01, maxDuration="45s"),
    }
    models = {md: unique(md) for md in strategies}
    first = next(iter(models.values()))
    register_trained(registry.uri, first, seed=1)
    for model in models.values():
        if model != first:  # one training; the others register the same artifacts
            register_again(registry.uri, first, "1", as_name=model)
        for alias in ("champion", "challenger"):
            set_alias(registry.uri, model, alias, "1")
    operator = OperatorProcess(kube, namespace, session_dir / f"operator-{namespace}.log").start()
    for md, strategy in strategies.items():
        cluster.create_md(md, md_spec(models[md], registry.uri, prometheus.url, strategy))
    try:
        for md in models:
            eventually(lambda md=md: status_of(cluster, md).get("phase") == "Healthy", 240, f"{md} Healthy")
        yield Env(cluster, registry, operator, models)
    finally:
        operator.stop()
        print(tail(operator.log, 80))
        kube.delete_namespace(namespace)


def served_by(answer: Answer) -> tuple[str, str] | None:
    return variant_of(answer.request_id)


def finished(env: Env, md: str, timeout: float = 480) -> dict[str, Any]:
    """The md's status once the candidate's rollout is over (promoted, rejected, kept stable); an
    A/B test alone may take its maxDuration (3m) after the candidate's pod is up."""

    def done() -> dict[str, Any]:
        status = status_of(env.cluster, md)
        rollout = status.get("rollout") or {}
        if rollout.get("lastOutcome") and not rollout.get("candidate"):
            return status
        raise AssertionError(f"phase {status.get('phase')}, rollout {rollout}")

    return eventually(done, timeout, f"{md}'s candidate decided")  # type: ignore[no-any-return]


def test_shadow_agreeing_candidate_continues_into_its_canary_and_is_promoted(env: Env) -> None:
    cluster, model = env.cluster, env.models["agrees"]
    assert register_again(env.registry.uri, model, "1") == "2"  # the same model again: agrees
    stable_pod_uids = {p.metadata.uid for p in pods(env, "agrees", "stable")}
    with Load(env.address("agrees"), period=0.05, workers=1, seed=1) as load:
        set_alias(env.registry.uri, model, "challenger", "2")

        def in_canary() -> bool:
            rollout = status_of(cluster, "agrees").get("rollout") or {}
            return rollout.get("strategy") == "canary"

        eventually(in_canary, 240, "the shadow passed into the canary")
        passed_at = time.time()
        shadow = status_of(cluster, "agrees")["rollout"]["shadow"]
        # stable pods mirrored without a restart; every caller was answered by stable until then
        assert {p.metadata.uid for p in pods(env, "agrees", "stable")} == stable_pod_uids
        during = [served_by(a) for a in load.answers if a.status == 200 and a.at < passed_at]
        status = finished(env, "agrees")
    print(f"agrees: shadow {shadow}; answers {load.counts()}")
    assert shadow["verdict"] == "Passed" and shadow["mirrored"] >= 40 and shadow["agreement"] == 1.0
    # the same model: an error is a mirrored request that timed out on a busy machine, within the limit
    assert shadow["errorRate"] <= 0.05 and shadow["stableLatencySeconds"] > 0
    assert status["stableVersion"] == "2" and status["history"][-1]["cause"] == "shadow+canary"
    assert env.registry.alias(model, "champion") == "2"
    reasons = [r for _, r, _ in cluster.events("agrees")]
    assert "ShadowStarted" in reasons and "ShadowPassed" in reasons and "Promoted" in reasons
    assert during and set(during) == {("1", "stable")}


def test_shadow_disagreeing_candidate_is_rejected_and_callers_only_ever_got_stable(env: Env) -> None:
    cluster, model = env.cluster, env.models["disagrees"]
    assert register_faulty(env.registry.uri, model, "inverted") == "2"
    with Load(env.address("disagrees"), period=0.05, workers=1, seed=2) as load:
        set_alias(env.registry.uri, model, "challenger", "2")
        status = finished(env, "disagrees")
        time.sleep(1)
    shadow = status["rollout"]["shadow"]
    print(f"disagrees: shadow {shadow}; answers {load.counts()}")
    assert status["phase"] == "RolledBack" and status["stableVersion"] == "1"
    assert shadow["verdict"] == "Failed" and shadow["agreement"] < 0.95 and shadow["mirrored"] >= 40
    progressing = condition(status, "Progressing")
    assert progressing["reason"] in ("ShadowRejected", "RolledBack")
    notes = [note for _, r, note in cluster.events("disagrees") if r == "ShadowRejected"]
    assert len(notes) == 1 and "maxDisagreement 5.00%" in notes[0] and "agreement" in notes[0]
    assert env.registry.alias(model, "champion") == "1"
    assert env.registry.tags(model, "2")["mlrollout.rollout"] == "rejected"
    answered = [a for a in load.answers if a.status == 200]
    assert answered and {served_by(a) for a in answered} == {("1", "stable")}  # never the candidate
    assert all(".0" not in a.body for a in answered)  # the inverted release answers floats
    eventually(lambda: set(tracks(cluster, "disagrees")) == {"stable"}, 60, "the shadow track removed")
    eventually(lambda: not shadow_service(env, "disagrees"), 60, "the shadow Service removed")


def conversions(rates: dict[str, float]) -> Any:
    """The application reporting a conversion for a share of the answers, by the variant that served."""

    def report(answer: Answer, rng: random.Random) -> dict[str, Any] | None:
        variant = served_by(answer)
        if variant is None or rng.random() >= rates[variant[1]]:
            return None
        return {"request_id": answer.request_id, "outcome": "conversion"}

    return report


def test_ab_test_promotes_the_variant_that_converts_better(env: Env) -> None:
    model = env.models["better"]
    assert register_again(env.registry.uri, model, "1") == "2"
    with Load(
        env.address("better"), period=0.03, workers=1, seed=3, feedback=conversions(CONVERSION)
    ) as load:
        set_alias(env.registry.uri, model, "challenger", "2")
        status = finished(env, "better")
    test = status["rollout"]["abTest"]
    served = [served_by(a) for a in load.answers if a.status == 200]
    split = sum(1 for v in served if v == ("2", "canary")) / max(
        1, sum(1 for v in served if v in (("2", "canary"), ("1", "stable")))
    )
    print(f"better: {test['message']}; measured split {split:.2f}; feedback {load.feedback_statuses}")
    assert test["decision"] == "CandidateWins" and test["assignment"] == "perRequest"
    last = test["history"][-1]
    assert last["pValue"] <= 0.05 and last["ciLow"] > 0 and last["candidate"]["mean"] > last["stable"]["mean"]
    assert status["stableVersion"] == "2" and status["history"][-1]["cause"] == "abTest"
    assert env.registry.alias(model, "champion") == "2"
    assert set(load.feedback_statuses) == {200}  # every outcome accepted, through the Service


def test_ab_test_without_an_effect_stops_with_no_winner_and_keeps_stable(env: Env) -> None:
    cluster, model = env.cluster, env.models["same"]
    assert register_again(env.registry.uri, model, "1") == "2"
    same = conversions({"stable": 0.3, "canary": 0.3})
    with Load(env.address("same"), period=0.03, workers=1, seed=4, feedback=same):
        set_alias(env.registry.uri, model, "challenger", "2")
        status = finished(env, "same")
    test = status["rollout"]["abTest"]
    print(f"same: {test['message']}")
    assert test["decision"] == "NoSignificantDifference", test
    assert status["stableVersion"] == "1" and env.registry.alias(model, "champion") == "1"
    eventually(lambda: status_of(cluster, "same").get("phase") == "Healthy", 60, "Healthy on stable")
    assert condition(status_of(cluster, "same"), "Progressing")["reason"] == "KeptStable"
    eventually(lambda: set(tracks(cluster, "same")) == {"stable"}, 60, "the candidate track removed")


def pods(env: Env, md: str, track: str) -> list[Any]:
    from kubernetes import client

    core = client.CoreV1Api(env.cluster.kube.api_client())
    selector = f"{names.LABEL_DEPLOYMENT}={md},{names.LABEL_TRACK}={track}"
    return list(core.list_namespaced_pod(env.cluster.namespace, label_selector=selector).items)


def shadow_service(env: Env, md: str) -> bool:
    wanted = names.track_service_name(md, names.TRACK_SHADOW)
    return any(s.metadata.name == wanted for s in env.cluster.services(md))
