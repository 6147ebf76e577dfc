"""`make demo`, experiments: a shadow phase that continues into a canary, and an A/B test that reaches
its decision on synthetic outcomes. Each act has its own ModelDeployment and registered model, and
sends its load to that ModelDeployment's Service, as users would.

- Shadow: the stable pods mirror every request to the candidate (switched on through their live
  config, no restart); callers are answered by stable only; after the window the numbers
  (agreement, error rate, p99 latency against stable's) pass and the canary of continueWith starts.
- A/B: half the requests reach the candidate (per request: the replica-ratio router); the load
  reports conversions to /feedback at 20 % for stable and 60 % for the candidate; the mSPRT decides,
  and the winner is promoted.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from harness.controlplane import ControlPlane
from harness.demo_support import NS, md_status, say
from harness.load import Answer, Load
from harness.models import register_again, register_trained, set_alias
from harness.procs import HarnessError, eventually
from mlrollout.api.names import service_name
from mlrollout.runtime.attribution import variant_of

IMAGE = "mlrollout.local/mlrollout-runtime:dev"


def _deploy(cp: ControlPlane, md: str, model: str, tracking_uri: str, prometheus: str, strategy: Any) -> str:
    """Register version 1, apply the ModelDeployment, wait until Healthy; the Service's address."""
    register_trained(tracking_uri, model, seed=1)
    for alias in ("champion", "challenger"):
        set_alias(tracking_uri, model, alias, "1")
    body = {
        "apiVersion": "mlrollout.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": md, "namespace": NS},
        "spec": {
            "model": {"name": model, "alias": "challenger"},
            "registry": {"trackingUri": tracking_uri, "championAlias": "champion"},
            "serving": {"image": IMAGE, "replicas": 1},
            "strategy": strategy,
            "analysis": {
                "prometheus": {"address": prometheus},
                "interval": "5s",
                "metrics": [{"name": "error-rate", "template": "errorRate", "max": 0.05}],
            },
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(body))
    eventually(lambda: md_status(cp, md).get("phase") == "Healthy", what=f"{md} Healthy", timeout=240)
    svc = json.loads(cp.kubectl("get", "service", service_name(md), "-n", NS, "-o", "json").stdout)
    return f"{svc['spec']['clusterIP']}:80"


def _follow(
    cp: ControlPlane, md: str, line: Callable[[dict[str, Any]], str], timeout: float
) -> dict[str, Any]:
    """Print each change of `line(status)` until the candidate's rollout is over."""
    last, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = md_status(cp, md)
        rollout = st.get("rollout") or {}
        text = line(st)
        if text != last:
            print(text)
            last = text
        if rollout.get("lastOutcome") and not rollout.get("candidate"):
            return st
        time.sleep(0.5)
    raise HarnessError(f"demo: {md}'s candidate was not decided in {timeout:.0f}s")


def _events(cp: ControlPlane, md: str) -> None:
    r = cp.kubectl(
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        f"involvedObject.name={md}",
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    )
    print("\n".join("   " + x[:200] for x in r.stdout.splitlines()))


def shadow_into_canary(cp: ControlPlane, tracking_uri: str, prometheus: str, timeout: float = 300) -> None:
    md, model = "churn-shadow", "churn-shadow-classifier"
    strategy = {
        "shadow": {
            "mirrorPercent": 100,
            "duration": "15s",
            "minRequests": 30,
            "maxDisagreement": 0.05,
            "maxLatencyRatio": 5,
            "maxErrorRate": 0.05,  # mirrored calls time out at 1 s: a busy demo machine may see a few
            "continueWith": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}]},
        }
    }
    say("Shadow: ModelDeployment churn-shadow mirrors live traffic to a candidate before it serves anyone")
    address = _deploy(cp, md, model, tracking_uri, prometheus, strategy)
    version = register_again(tracking_uri, model, "1")
    set_alias(tracking_uri, model, "challenger", version)
    print(f"   version {version} is the challenger; load goes to Service {service_name(md)} ({address})")

    def line(st: dict[str, Any]) -> str:
        rollout = st.get("rollout") or {}
        sh = rollout.get("shadow") or {}
        numbers = (
            f"  mirrored={sh.get('mirrored', 0):.0f} agreement={sh.get('agreement')}"
            f" errorRate={sh.get('errorRate')} p99 ratio={sh.get('latencyRatio')}"
            if sh
            else ""
        )
        return (
            f"   phase: {st.get('phase')}  stage: {rollout.get('strategy')}  stable={st.get('stableVersion')}"
            f"  canary weight={(st.get('weights') or {}).get('canary')}%{numbers}"
        )

    with Load(address, period=0.05, workers=1, seed=11) as load:
        st = _follow(cp, md, line, timeout)
    by = sorted({str(variant_of(a.request_id)) for a in load.answers if a.status == 200})
    print(f"   {len(load.answers)} requests answered by (version, track): {', '.join(by)}")
    print(f"   shadow verdict: {(st['rollout'].get('shadow') or {}).get('message')}")
    print(f"   history: {[(h['version'], h.get('cause')) for h in st.get('history', [])]}")
    _events(cp, md)
    if st.get("stableVersion") != version:
        raise HarnessError("demo: the shadowed candidate was not promoted through its canary")
    cp.kubectl("delete", "modeldeployment", md, "-n", NS, "--wait=true", "--timeout=60s")


def ab_test_decided(cp: ControlPlane, tracking_uri: str, prometheus: str, timeout: float = 300) -> None:
    md, model = "churn-ab", "churn-ab-classifier"
    rates = {"stable": 0.2, "canary": 0.6}
    strategy = {
        "abTest": {
            "candidateWeight": 50,
            "metric": {"name": "conversion", "kind": "proportion"},
            "minimumDetectableEffect": 0.25,
            "baseline": 0.3,
            "maxDuration": "3m",
        }
    }
    say("A/B test: ModelDeployment churn-ab splits requests 50/50 and decides on reported conversions")
    address = _deploy(cp, md, model, tracking_uri, prometheus, strategy)
    version = register_again(tracking_uri, model, "1")
    set_alias(tracking_uri, model, "challenger", version)
    print(f"   version {version} is the challenger; the application reports conversions to /feedback:")
    print(f"   {rates['stable']:.0%} of stable's answers, {rates['canary']:.0%} of the candidate's")

    def report(answer: Answer, rng: random.Random) -> dict[str, Any] | None:
        variant = variant_of(answer.request_id)
        if variant is None or rng.random() >= rates[variant[1]]:
            return None
        return {"request_id": answer.request_id, "outcome": "conversion"}

    def line(st: dict[str, Any]) -> str:
        test = (st.get("rollout") or {}).get("abTest") or {}
        return f"   phase: {st.get('phase')}  A/B: {test.get('decision', '-')}  {test.get('message') or ''}"

    with Load(address, period=0.03, workers=1, seed=12, feedback=report) as load:
        st = _follow(cp, md, line, timeout)
    test = st["rollout"]["abTest"]
    plan = test.get("plan") or {}
    print(
        f"   assignment {test['assignment']}; plan: {plan.get('fixedHorizon')} per arm for a fixed test,"
        f" at most {plan.get('sequentialMax')} for the mSPRT; {test['analyses']} analyses"
    )
    print(f"   feedback answers: {load.feedback_statuses}; history: {st.get('history', [])[-1]}")
    _events(cp, md)
    if test.get("decision") != "CandidateWins" or st.get("stableVersion") != version:
        raise HarnessError("demo: the A/B test did not promote the better candidate")
    cp.kubectl("delete", "modeldeployment", md, "-n", NS, "--wait=true", "--timeout=60s")
