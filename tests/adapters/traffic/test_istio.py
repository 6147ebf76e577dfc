"""VirtualService rendering, pure: weights, pin and sticky entries before the user's entry, mirror with
mirrorPercentage, the host form kept, restore, bad input named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.traffic import istio
from mlrollout.adapters.traffic import routing as r
from mlrollout.api.status import Weights

OWNER = Owner(name="churn", namespace="ml", uid="u1")


def user_vs(host: str = "churn.ml.svc.cluster.local") -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "ml"},
        "spec": {
            "hosts": ["churn.example.com"],
            "http": [
                {
                    "name": "other",
                    "match": [{"uri": {"prefix": "/other"}}],
                    "route": [{"destination": {"host": "other"}}],
                },
                {
                    "name": "main",
                    "match": [{"uri": {"prefix": "/predict"}}],
                    "timeout": "5s",
                    "route": [{"destination": {"host": host}}],
                },
            ],
        },
    }


def test_weights_pin_and_mirror_on_the_users_entry() -> None:
    out = istio.render(user_vs(), OWNER, r.Routing(canary_weight=5, mirror_percent=30), None)
    http = out["spec"]["http"]
    assert [e["name"] for e in http] == ["other", "mlrollout-pin-1", "main"]
    assert http[0] == user_vs()["spec"]["http"][0]
    main = http[2]
    assert main["route"] == [
        {"destination": {"host": "churn-stable.ml.svc.cluster.local"}, "weight": 95},
        {"destination": {"host": "churn-canary.ml.svc.cluster.local"}, "weight": 5},
    ]
    assert main["mirror"] == {"host": "churn-shadow.ml.svc.cluster.local"}
    assert main["mirrorPercentage"] == {"value": 30.0}
    assert main["timeout"] == "5s"
    assert http[1]["match"] == [
        {"uri": {"prefix": "/predict"}, "headers": {"x-mlrollout-track": {"exact": "canary"}}}
    ]
    assert istio.read_weights(out, OWNER, None) == Weights(stable=95, canary=5)


@given(
    first=st.integers(0, 100), second=st.integers(0, 100), sticky=st.booleans(), mirror=st.integers(0, 100)
)
def test_rendering_replaces_never_appends_and_restores(
    first: int, second: int, sticky: bool, mirror: int
) -> None:
    s = r.Sticky(cookie="uid") if sticky else None
    once = istio.render(
        user_vs("churn"), OWNER, r.Routing(canary_weight=first, sticky=s, mirror_percent=mirror), None
    )
    want = r.Routing(canary_weight=second, sticky=s)
    assert istio.render(once, OWNER, want, None) == istio.render(user_vs("churn"), OWNER, want, None)
    assert istio.read_weights(istio.render(once, OWNER, want, None), OWNER, None) == Weights(
        stable=100 - second, canary=second
    )
    assert istio.restored(once, OWNER, None) == user_vs("churn")  # exactly as the user wrote it


def test_sticky_cookie_entries_match_the_cookie_header_by_regex() -> None:
    out = istio.render(user_vs(), OWNER, r.Routing(canary_weight=50, sticky=r.Sticky(cookie="uid")), None)
    names = [e["name"] for e in out["spec"]["http"]]
    assert names == [
        "other",
        "mlrollout-pin-1",
        "mlrollout-sticky-canary-1",
        "mlrollout-sticky-stable-1",
        "main",
    ]
    assert out["spec"]["http"][2]["match"][0]["headers"] == {
        "cookie": {"regex": r.cookie_regex("uid", 0, 128)}
    }


def test_route_name_picks_one_entry() -> None:
    vs = user_vs()
    vs["spec"]["http"].append({"name": "second", "route": [{"destination": {"host": "churn"}}]})
    out = istio.render(vs, OWNER, r.Routing(canary_weight=40), "second")
    assert out["spec"]["http"][1] == vs["spec"]["http"][1]
    assert out["spec"]["http"][-1]["route"][1]["weight"] == 40


@pytest.mark.parametrize(
    ("vs", "route_name", "message"),
    [
        (None, None, "VirtualService ml/web (spec.traffic.istio.virtualService) not found"),
        (user_vs("churn.elsewhere"), None, "has an http route to host churn: none found"),
        (user_vs(), "nope", "has an http route named nope to host churn: none found"),
    ],
)
def test_bad_virtualservices_are_named(
    vs: dict[str, Any] | None, route_name: str | None, message: str
) -> None:
    found = istio.problem(vs, OWNER, "web", route_name)
    assert found is not None and message in found


def test_shared_and_claimed_virtualservices_are_refused() -> None:
    shared = user_vs()
    shared["spec"]["http"][1]["route"].append({"destination": {"host": "legacy"}, "weight": 50})
    assert "and to legacy" in (istio.problem(shared, OWNER, "web", None) or "")
    claimed = user_vs()
    claimed["metadata"]["annotations"] = {r.ANNOTATION_MANAGED_BY: "fraud"}
    assert "managed by ModelDeployment fraud" in (istio.problem(claimed, OWNER, "web", None) or "")
    assert istio.problem(user_vs(), OWNER, "web", None) is None
