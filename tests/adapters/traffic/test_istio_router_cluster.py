"""The Istio router on the real API server with Istio's real CRDs (istio.io/api, from the module
proxy): the VirtualService is updated (weights, pin, sticky cookie buckets, mirror with
mirrorPercentage), accepted by the CRD's schema, read back, and given back as the user wrote it.
Istio's data plane does not run here: no traffic goes through it."""

from __future__ import annotations

from typing import Any

import pytest
from route_support import create_md, md_spec, read

from harness.kube import KubeEnv
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.traffic import routing as r
from mlrollout.adapters.traffic.routes import IstioRouter
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Weights

pytestmark = pytest.mark.integration

GROUP, PLURAL = "networking.istio.io", "virtualservices"


def user_vs(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "hosts": ["churn.example.com"],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": "docs",
                    "match": [{"uri": {"prefix": "/docs"}}],
                    "route": [{"destination": {"host": "docs"}}],
                },
                {
                    "name": "predict",
                    "match": [{"uri": {"prefix": "/predict"}}],
                    "timeout": "5s",
                    "route": [{"destination": {"host": f"churn.{namespace}.svc.cluster.local"}}],
                },
            ],
        },
    }


def test_virtualservice_updated_read_back_and_given_back(
    kube: KubeEnv, namespace: str, crd_installed: str, istio_crds: None
) -> None:
    spec_body = md_spec({"istio": {"virtualService": "web", "routeName": "predict"}})
    owner = create_md(kube, namespace, "churn", spec_body)
    spec = ModelDeploymentSpec.model_validate(spec_body)
    router = IstioRouter(KubeExecutor(kube.api_client()))
    assert (
        router.ensure(owner, spec)
        == f"VirtualService {namespace}/web (spec.traffic.istio.virtualService) not found"
    )

    kube.apply(user_vs(namespace))
    original = read(kube, GROUP, PLURAL, namespace, "web")
    assert router.ensure(owner, spec) is None
    assert router.get_weights(owner, spec, ()) == Weights(stable=100, canary=0)

    want = r.Routing(canary_weight=30, sticky=r.Sticky(cookie="uid"), mirror_percent=25)
    assert router.route(owner, spec, want)
    stored = read(kube, GROUP, PLURAL, namespace, "web")
    http = {e["name"]: e for e in stored["spec"]["http"]}
    assert [e["name"] for e in stored["spec"]["http"]] == [
        "docs",
        "mlrollout-pin-1",
        "mlrollout-sticky-canary-1",
        "mlrollout-sticky-stable-1",
        "predict",
    ]
    suffix = f".{namespace}.svc.cluster.local"
    assert [(d["destination"]["host"], d["weight"]) for d in http["predict"]["route"]] == [
        (f"churn-stable{suffix}", 70),
        (f"churn-canary{suffix}", 30),
    ]
    assert http["predict"]["mirror"] == {"host": f"churn-shadow{suffix}"}
    assert http["predict"]["mirrorPercentage"] == {"value": 25}
    assert http["predict"]["timeout"] == "5s"
    assert http["docs"] == original["spec"]["http"][0]
    cookie = http["mlrollout-sticky-canary-1"]["match"][0]["headers"]["cookie"]["regex"]
    assert cookie == r.cookie_regex("uid", 0, r.candidate_buckets(30))
    assert http["mlrollout-pin-1"]["match"][0] == {
        "uri": {"prefix": "/predict"},
        "headers": {r.PIN_HEADER: {"exact": r.PIN_VALUE}},
    }
    assert router.get_weights(owner, spec, ()) == Weights(stable=70, canary=30)

    # A new weight replaces (the mirror goes when not asked for), a repeat writes nothing.
    assert router.route(owner, spec, r.Routing(canary_weight=60))
    moved = read(kube, GROUP, PLURAL, namespace, "web")
    assert [e["name"] for e in moved["spec"]["http"]] == ["docs", "mlrollout-pin-1", "predict"]
    assert "mirror" not in moved["spec"]["http"][2]
    assert router.get_weights(owner, spec, ()) == Weights(stable=40, canary=60)
    assert router.route(owner, spec, r.Routing(canary_weight=60))
    assert (
        read(kube, GROUP, PLURAL, namespace, "web")["metadata"]["resourceVersion"]
        == moved["metadata"]["resourceVersion"]
    )

    router.restore(owner, spec)
    back = read(kube, GROUP, PLURAL, namespace, "web")
    assert back["spec"] == original["spec"]
    assert r.ANNOTATION_MANAGED_BY not in (back["metadata"].get("annotations") or {})


def test_a_virtualservice_without_our_host_is_named(
    kube: KubeEnv, namespace: str, crd_installed: str, istio_crds: None
) -> None:
    spec_body = md_spec({"istio": {"virtualService": "web"}})
    owner = create_md(kube, namespace, "churn", spec_body)
    spec = ModelDeploymentSpec.model_validate(spec_body)
    vs = user_vs(namespace)
    vs["spec"]["http"].pop()
    kube.apply(vs)
    router = IstioRouter(KubeExecutor(kube.api_client()))
    at = f"VirtualService {namespace}/web (spec.traffic.istio.virtualService)"
    assert router.ensure(owner, spec) == f"{at} has an http route to host churn: none found"
    assert not router.route(owner, spec, r.Routing(canary_weight=50))
