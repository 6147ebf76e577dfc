"""Rollbacks decided by live evidence, on real parts: the real control plane, the operator, MLflow,
real serving pods (executed by the pod runner) scraped by a real Prometheus, and load sent to each
ModelDeployment's Service.

One operator, one Prometheus (this module's own: it is stopped and restarted mid-analysis) and one
namespace serve the whole module; the ModelDeployments come up together, and the two bad releases
(one answering 5xx on part of its input, one slow) are rolled out side by side.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from operator_support import LIVE_WITHIN, Cluster, OperatorProcess, Registry, eventually, unique
from test_operator_canary import condition, status_of, tracks

from harness.kube import KubeEnv
from harness.load import Answer, Load
from harness.models import from_faulty, register_faulty, register_trained, set_alias
from harness.podnet import PodNetwork
from harness.procs import tail
from harness.services import MLflowServer, Prometheus
from harness.traffic import cluster_ip
from mlrollout.api import names

pytestmark = pytest.mark.integration

RUNTIME_IMAGE = "mlrollout.local/mlrollout-runtime:dev"  # executed for real by the pod runner
FAKE_IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: kwok makes its pods ready
INTERVAL = 5  # seconds: the analysis interval of every ModelDeployment here
PLUGIN = Path(sys.executable).parent / "kubectl-mlrollout"
ERROR_RATE_MAX = 0.05
P99_MAX = 0.25


def analysis(prometheus: str, *metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "prometheus": {"address": prometheus},
        "interval": f"{INTERVAL}s",
        "minRequests": 5,
        "metrics": list(metrics),
        **extra,
    }


ERROR_RATE = {"name": "error-rate", "template": "errorRate", "max": ERROR_RATE_MAX}
P99 = {"name": "p99-latency", "template": "latencyP99", "max": P99_MAX}


def md_spec(model: str, uri: str, steps: list[dict[str, Any]], analysis_: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": "challenger"},
        "registry": {"trackingUri": uri, "championAlias": "champion"},
        # The faulty releases are pyfunc models logged as code: served only with this opt-in.
        "serving": {"image": RUNTIME_IMAGE, "replicas": 1, "allowCode": True},
        "strategy": {"canary": {"steps": steps}},
        "analysis": analysis_,
    }


@dataclass
class Env:
    cluster: Cluster
    registry: Registry
    prometheus: Prometheus
    operator: OperatorProcess
    models: dict[str, str]  # ModelDeployment -> registered model

    def address(self, md: str) -> str:
        return f"{cluster_ip(self.cluster.kube, self.cluster.namespace, names.service_name(md))}:80"

    def plugin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PLUGIN), *args, "-n", self.cluster.namespace, "--kubeconfig", self.cluster.kube.kubeconfig],
            capture_output=True,
            text=True,
            timeout=LIVE_WITHIN,
        )


def event_times(cluster: Cluster, md: str, reason: str) -> list[tuple[float, str]]:
    """(eventTime as a Unix time, note) of the md's Events with this reason."""
    found: dict[str, Any] = cluster.objects.list_namespaced_custom_object(  # type: ignore[assignment]
        "events.k8s.io", "v1", cluster.namespace, "events", field_selector=f"regarding.name={md}"
    )
    return sorted(
        (datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")).timestamp(), e.get("note", ""))
        for e in found["items"]
        if e["reason"] == reason and e.get("eventTime")
    )


@pytest.fixture(scope="module")
def env(
    kube: KubeEnv,
    crd_installed: str,
    mlflow_server: MLflowServer,
    session_dir: Path,
    pod_network: PodNetwork | None,
) -> Iterator[Env]:
    # This module's own Prometheus, reading the pod runner's scrape targets: it can be stopped at will.
    work = session_dir / "prometheus-rollbacks"
    work.mkdir(parents=True, exist_ok=True)
    (session_dir / "prometheus").mkdir(parents=True, exist_ok=True)
    link = work / "targets-runner.json"
    if not link.is_symlink():
        link.symlink_to(session_dir / "prometheus" / "targets-runner.json")
    prom = Prometheus(work, host=pod_network.host_ip if pod_network else "127.0.0.1").start()
    namespace = kube.create_namespace("rb")
    cluster = Cluster(kube, namespace)
    registry = Registry(mlflow_server.uri)
    models = {md: unique(md) for md in ("errs", "slow", "bg", "outage")}
    for model in models.values():
        register_trained(registry.uri, model, seed=1)
        for alias in ("champion", "challenger"):
            set_alias(registry.uri, model, alias, "1")
    operator = OperatorProcess(kube, namespace, session_dir / f"operator-{namespace}.log").start()
    bad_steps = [{"setWeight": 50}, {"analysis": {"count": 3}}, {"setWeight": 100}]
    cluster.create_md(
        "errs", md_spec(models["errs"], registry.uri, bad_steps, analysis(prom.url, ERROR_RATE))
    )
    cluster.create_md("slow", md_spec(models["slow"], registry.uri, bad_steps, analysis(prom.url, P99)))
    bg = md_spec(models["bg"], registry.uri, [], analysis(prom.url, ERROR_RATE))
    bg["strategy"] = {
        "blueGreen": {"autoPromotion": True, "postPromotionAnalysis": {"count": 3}, "scaleDownDelay": "10m"}
    }
    cluster.create_md("bg", bg)
    outage_steps = [{"setWeight": 50}, {"analysis": {"count": 3}}]
    cluster.create_md(
        "outage",
        md_spec(models["outage"], registry.uri, outage_steps, analysis(prom.url, ERROR_RATE, errorLimit=1)),
    )
    try:
        for md in models:
            eventually(lambda md=md: status_of(cluster, md).get("phase") == "Healthy", 240, f"{md} Healthy")
        yield Env(cluster, registry, prom, operator, models)
    finally:
        operator.stop()
        print(tail(operator.log, 80))
        prom.stop()
        kube.delete_namespace(namespace)


@dataclass
class Release:
    md: str
    breach: Answer | None  # the first answer that broke the threshold, as the load saw it
    rolled_back_at: float | None  # the CandidateRolledBack Event's time
    counts: dict[int, int]
    last_error_at: float | None  # the last 5xx the load saw

    @property
    def seconds(self) -> float | None:
        if self.breach is None or self.rolled_back_at is None:
            return None
        return self.rolled_back_at - self.breach.at


@pytest.fixture(scope="module")
def bad_releases(env: Env) -> dict[str, Release]:
    """Version 2 of `errs` and `bg` (raises on ~31 % of rows) and of `slow` (0.4 s a call) rolled out
    at once: canaries for the first two, blue-green promoted automatically for `bg`."""
    # The breach: the first answer users got from the bad release (a 500; a slow answer of version 2).
    breach: dict[str, Callable[[Answer], bool]] = {
        "errs": lambda a: a.status >= 500,
        "slow": lambda a: a.status == 200 and from_faulty(a.body) and a.seconds > P99_MAX,
        "bg": lambda a: a.status >= 500,
    }
    for md, fault in (("errs", "errors"), ("slow", "slow"), ("bg", "errors")):
        version = register_faulty(env.registry.uri, env.models[md], fault)  # type: ignore[arg-type]
        assert version == "2"
    loads = {md: Load(env.address(md), seed=i) for i, md in enumerate(breach)}
    for load in loads.values():
        load.__enter__()
    try:
        for md in breach:
            set_alias(env.registry.uri, env.models[md], "challenger", "2")
        for md in breach:
            eventually(
                lambda md=md: status_of(env.cluster, md).get("phase") == "RolledBack",
                300,
                f"{md} rolled back",
            )
        time.sleep(2)  # a little load on stable after the rollback
    finally:
        for load in loads.values():
            load.__exit__()
    found = {}
    for md, load in loads.items():
        events = event_times(env.cluster, md, "CandidateRolledBack")
        last_error = load.last(lambda a: a.status >= 500)
        found[md] = Release(
            md,
            load.first(breach[md]),
            events[0][0] if events else None,
            load.counts(),
            last_error.at if last_error else None,
        )
        print(f"{md}: answers {found[md].counts}; rolled back {found[md].seconds} s after the first breach")
    return found


def assert_rolled_back_by_itself(env: Env, release: Release, metric: str, threshold: float) -> None:
    md, model = release.md, env.models[release.md]
    status = status_of(env.cluster, md)
    assert status["phase"] == "RolledBack" and status["stableVersion"] == "1"
    assert env.registry.alias(model, "champion") == "1"  # the alias never moved
    tags = env.registry.tags(model, "2")
    assert tags["mlrollout.rollout"] == "rolled_back" and metric in tags["mlrollout.rollout.reason"]
    progressing = condition(status, "Progressing")
    assert progressing["reason"] in ("AnalysisFailed", "RolledBack")  # RolledBack on later ticks
    for text in (
        progressing["message"],
        *(note for _, note in event_times(env.cluster, md, "CandidateRolledBack")),
    ):
        assert metric in text and f"max {threshold:.4g}" in text, text  # the metric, its value, its threshold
    [failed] = [m for m in status["rollout"]["analysis"]["history"] if m["outcome"] == "fail"]
    assert failed["metric"] == metric and failed["value"] > threshold
    assert f"{failed['value']:.4g}" in progressing["message"]
    assert release.breach is not None and release.rolled_back_at is not None
    # One analysis interval plus 10 s from the first bad answer the users saw to the rollback.
    assert release.seconds is not None and release.seconds <= INTERVAL + 10, release.seconds
    eventually(lambda: set(tracks(env.cluster, md)) == {"stable"}, 60, "the canary track removed")
    assert 200 in release.counts


def test_a_candidate_answering_5xx_is_rolled_back_by_itself(
    env: Env, bad_releases: dict[str, Release]
) -> None:
    release = bad_releases["errs"]
    assert release.counts.get(500, 0) > 0  # the candidate really failed users before the rollback
    assert_rolled_back_by_itself(env, release, "error-rate", ERROR_RATE_MAX)


def test_a_slow_candidate_is_rolled_back_on_p99(env: Env, bad_releases: dict[str, Release]) -> None:
    release = bad_releases["slow"]
    assert release.counts.get(500, 0) == 0  # slow, not failing: latency alone decided
    assert_rolled_back_by_itself(env, release, "p99-latency", P99_MAX)


def test_a_metrics_outage_pauses_the_rollout_until_prometheus_is_back(env: Env) -> None:
    cluster, model = env.cluster, env.models["outage"]
    assert register_trained(env.registry.uri, model, seed=2) == "2"
    with Load(env.address("outage"), seed=7):
        set_alias(env.registry.uri, model, "challenger", "2")

        def measured_once() -> bool:
            run = (status_of(cluster, "outage").get("rollout") or {}).get("analysis") or {}
            return any(t.get("passed") for t in run.get("tallies", []))

        eventually(measured_once, 240, "a first passing measurement of the healthy candidate")
        env.prometheus.stop()
        stopped = time.monotonic()

        def paused() -> dict[str, Any] | None:
            found = condition(status_of(cluster, "outage"), "Paused")
            return found if found.get("reason") == "MetricsUnavailable" else None

        cond = eventually(paused, 60, "the rollout paused on the outage")
        assert cond["status"] == "True" and "unreachable" in cond["message"], cond
        assert "neither promoting nor rolling back" in cond["message"]
        # Several more intervals without data: still the same candidate, nothing promoted, nothing undone.
        time.sleep(3 * INTERVAL)
        status = status_of(cluster, "outage")
        assert status["phase"] == "Progressing" and status["canaryVersion"] == "2", status
        assert (
            status["stableVersion"] == "1" and condition(status, "Paused")["reason"] == "MetricsUnavailable"
        )
        assert env.registry.alias(model, "champion") == "1"
        reasons = [r for _, r, _ in cluster.events("outage")]
        assert "Promoted" not in reasons and "CandidateRolledBack" not in reasons
        print(f"Prometheus down for {time.monotonic() - stopped:.0f} s")
        env.prometheus.restart()

        def promoted() -> bool:
            status = status_of(cluster, "outage")
            return status.get("phase") == "Healthy" and status.get("stableVersion") == "2"

        eventually(promoted, 180, "the rollout resumed and promoted version 2")
    assert env.registry.alias(model, "champion") == "2"
    assert env.registry.tags(model, "2")["mlrollout.rollout"] == "promoted"
    assert condition(status_of(cluster, "outage"), "Paused").get("status") == "False"


def test_undo_returns_to_the_previous_version(env: Env) -> None:
    cluster, model = env.cluster, env.models["outage"]
    if status_of(cluster, "outage").get("stableVersion") != "2":
        pytest.skip("needs the promotion of the outage test")
    done = env.plugin("undo", "outage")
    assert done.returncode == 0, done.stderr
    assert "from version 2 to 1" in done.stdout

    def back_on_1() -> bool:
        status = status_of(cluster, "outage")
        found = tracks(cluster, "outage").get("stable")
        return (
            status.get("stableVersion") == "1"
            and status.get("phase") == "Healthy"
            and found is not None
            and found["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"
        )

    eventually(back_on_1, 180, "stable serving version 1 again")
    assert env.registry.alias(model, "champion") == "1"
    history = env.plugin("history", "outage")
    assert history.returncode == 0 and "undo" in history.stdout, history.stdout
    # Version 2 (the challenger alias still names it) does not roll out again by itself.
    time.sleep(3)
    assert status_of(cluster, "outage").get("canaryVersion") is None


def test_a_query_that_does_not_parse_holds_the_candidate_before_any_traffic(env: Env) -> None:
    cluster = env.cluster
    model = env.registry.register(unique("badq"), versions=2, alias="champion")
    env.registry.set_alias(model, "challenger", "1")
    broken = {
        "name": "broken-query",
        "query": 'sum(rate(mlrollout_requests_total{track="canary"}[1m])',
        "max": 1,
    }
    spec = md_spec(
        model, env.registry.uri, [{"setWeight": 50}, {"analysis": {}}], analysis(env.prometheus.url, broken)
    )
    spec["serving"]["image"] = FAKE_IMAGE
    cluster.create_md("badq", spec)
    eventually(lambda: status_of(cluster, "badq").get("phase") == "Healthy", 120, "badq Healthy on 1")
    env.registry.set_alias(model, "challenger", "2")

    def held() -> dict[str, Any] | None:
        found = condition(status_of(cluster, "badq"), "Degraded")
        return found if found.get("reason") == "InvalidAnalysisQuery" else None

    cond = eventually(held, 60, "the candidate held on the broken query")
    assert "broken-query" in cond["message"] and "parse error" in cond["message"], cond
    notes = [n for _, r, n in cluster.events("badq") if r == "InvalidAnalysisQuery"]
    assert notes and "broken-query" in notes[0]
    time.sleep(3)
    status = status_of(cluster, "badq")
    assert set(tracks(cluster, "badq")) == {"stable"}  # no traffic moved: no canary pods at all
    assert (status.get("weights") or {}).get("canary", 0) == 0 and env.registry.alias(
        model, "champion"
    ) == "1"

    # Fixed in the spec: the rollout starts.
    fixed = {**broken, "query": 'sum(rate(mlrollout_requests_total{track="canary"}[1m]))'}
    cluster.patch_md("badq", {"spec": {"analysis": {"metrics": [fixed]}}})
    eventually(lambda: "canary" in tracks(cluster, "badq"), 60, "the canary started once the query parses")
    # the canary Deployment is written before the status that clears the condition
    eventually(
        lambda: condition(status_of(cluster, "badq"), "Degraded").get("status") == "False",
        30,
        "the Degraded condition cleared",
    )


def test_promote_with_nothing_to_promote_exits_1_with_a_message(env: Env) -> None:
    out = env.plugin("promote", "errs")
    assert out.returncode == 1 and "no rollout in progress" in out.stderr, (out.returncode, out.stderr)
    annotations = (env.cluster.get_md("errs") or {})["metadata"].get("annotations") or {}
    assert names.ANNOTATION_REQUEST not in annotations


def test_blue_green_promotes_then_switches_back_by_itself_within_the_scale_down_window(
    env: Env, bad_releases: dict[str, Release]
) -> None:
    release, model = bad_releases["bg"], env.models["bg"]
    # Users got 500s: version 2 really was promoted (the active Service selected the preview).
    assert release.counts.get(500, 0) > 0
    assert_rolled_back_by_itself(env, release, "error-rate", ERROR_RATE_MAX)
    [service] = [s for s in env.cluster.services("bg") if s.metadata.name == "bg"]
    assert service.spec.selector[names.LABEL_TRACK] == "stable"
    assert tracks(env.cluster, "bg")["stable"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"
    reasons = [r for _, r, _ in env.cluster.events("bg")]
    assert "Promoted" not in reasons and env.registry.alias(model, "champion") == "1"
    # Instant: stable was never scaled down, so the errors stop as soon as the selector is switched back.
    assert release.last_error_at is not None and release.rolled_back_at is not None
    print(f"bg: last 5xx {release.last_error_at - release.rolled_back_at:.1f} s after the rollback Event")
    assert release.last_error_at - release.rolled_back_at <= 10
