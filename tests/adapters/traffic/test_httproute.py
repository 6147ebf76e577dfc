"""HTTPRoute rendering, pure: only the operator's entries change, rendering twice changes nothing,
restoring gives back the user's route, weights read back, bad routes named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.traffic import httproute as h
from mlrollout.adapters.traffic import routing as r
from mlrollout.api.status import Weights

OWNER = Owner(name="churn", namespace="ml", uid="u1")
ACCEPTED = {
    "parents": [
        {
            "parentRef": {"name": "gw"},
            "controllerName": "example.io/gw",
            "conditions": [
                {"type": "Accepted", "status": "True", "observedGeneration": 1},
                {"type": "ResolvedRefs", "status": "True", "observedGeneration": 1},
            ],
        }
    ]
}


def user_route(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "ml", "generation": 1, "labels": {"team": "a"}},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["churn.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                    "backendRefs": [{"name": "other", "port": 8080}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
                        }
                    ],
                    "backendRefs": [{"name": "churn", "port": 80}],
                },
            ],
        },
        "status": status or ACCEPTED,
    }


def rules_by_name(route: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule.get("name", f"#{i}"): rule for i, rule in enumerate(route["spec"]["rules"])}


def test_weights_replace_the_users_backend_and_leave_the_rest() -> None:
    out = h.render(user_route(), OWNER, r.Routing(canary_weight=10))
    rules = rules_by_name(out)
    assert rules["#1"] == user_route()["spec"]["rules"][0]  # someone else's rule untouched
    mine = rules["#2"]
    assert mine["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "churn-stable", "port": 80, "weight": 90},
        {"group": "", "kind": "Service", "name": "churn-canary", "port": 80, "weight": 10},
    ]
    assert mine["filters"] == user_route()["spec"]["rules"][1]["filters"]
    pin = rules["mlrollout-pin-1"]
    assert pin["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/predict"},
            "headers": [{"type": "Exact", "name": "x-mlrollout-track", "value": "canary"}],
        }
    ]
    assert [b["name"] for b in pin["backendRefs"]] == ["churn-canary"]
    assert out["metadata"]["annotations"][r.ANNOTATION_MANAGED_BY] == "churn"
    assert out["metadata"]["labels"] == {"team": "a"}
    assert h.read_weights(out, OWNER) == Weights(stable=90, canary=10)


@given(
    first=st.integers(0, 100), second=st.integers(0, 100), sticky=st.booleans(), mirror=st.integers(0, 100)
)
def test_rendering_replaces_never_appends(first: int, second: int, sticky: bool, mirror: int) -> None:
    s = r.Sticky(header="x-user") if sticky else None
    once = h.render(user_route(), OWNER, r.Routing(canary_weight=first, sticky=s, mirror_percent=mirror))
    want = r.Routing(canary_weight=second, sticky=s)
    assert h.render(once, OWNER, want) == h.render(user_route(), OWNER, want)
    assert h.render(h.render(once, OWNER, want), OWNER, want) == h.render(once, OWNER, want)
    assert h.read_weights(h.render(once, OWNER, want), OWNER) == Weights(stable=100 - second, canary=second)
    back = h.restored(once, OWNER)
    expected = user_route()
    expected["spec"]["rules"][1]["backendRefs"] = [
        {"group": "", "kind": "Service", "name": "churn", "port": 80}
    ]
    assert back == expected


def test_sticky_rules_split_users_by_bucket_and_the_pin_wins() -> None:
    out = h.render(user_route(), OWNER, r.Routing(canary_weight=25, sticky=r.Sticky(header="x-user")))
    rules = rules_by_name(out)
    canary, stable = rules["mlrollout-sticky-canary-1"], rules["mlrollout-sticky-stable-1"]
    assert canary["backendRefs"][0]["name"] == "churn-canary"
    assert stable["backendRefs"][0]["name"] == "churn-stable"
    header = canary["matches"][0]["headers"][0]
    assert header["type"] == "RegularExpression" and header["name"] == "x-user"
    assert header["value"] == r.header_regex(0, 64)
    # The pin also matches with the sticky header present, with more header matches (precedence).
    assert max(len(m["headers"]) for m in rules["mlrollout-pin-1"]["matches"]) == 2


def test_no_candidate_puts_the_rule_back_on_the_service() -> None:
    moved = h.render(user_route(), OWNER, r.Routing(canary_weight=30, mirror_percent=50))
    assert any(f["type"] == "RequestMirror" for f in rules_by_name(moved)["#2"]["filters"])
    steady = h.render(moved, OWNER, r.Routing(canary_weight=None))
    assert [rule.get("name") for rule in steady["spec"]["rules"]] == [None, None]
    assert steady["spec"]["rules"][1]["filters"] == user_route()["spec"]["rules"][1]["filters"]
    assert h.read_weights(steady, OWNER) == Weights(stable=100, canary=0)


def test_mirror_filter_carries_the_percentage() -> None:
    out = h.render(user_route(), OWNER, r.Routing(canary_weight=0, mirror_percent=20))
    mirror = [f for f in rules_by_name(out)["#2"]["filters"] if f["type"] == "RequestMirror"]
    assert mirror == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "churn-shadow", "port": 80}, "percent": 20},
        }
    ]


def foreign(route: dict[str, Any]) -> dict[str, Any]:
    route["spec"]["rules"][1]["backendRefs"].append({"name": "legacy", "port": 80})
    return route


def claimed(route: dict[str, Any]) -> dict[str, Any]:
    route["metadata"]["annotations"] = {r.ANNOTATION_MANAGED_BY: "fraud"}
    return route


def unreferenced(route: dict[str, Any]) -> dict[str, Any]:
    route["spec"]["rules"].pop()
    return route


def orphan(route: dict[str, Any]) -> dict[str, Any]:
    route.pop("status")
    return route


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (None, "HTTPRoute ml/web (spec.traffic.gatewayAPI.httpRoute) not found"),
        (claimed(user_route()), "is managed by ModelDeployment fraud"),
        (unreferenced(user_route()), "has no rule with a backendRef to Service churn"),
        (foreign(user_route()), "and to legacy"),
        (orphan(user_route()), "is not accepted by any Gateway"),
    ],
)
def test_bad_routes_are_named(route: dict[str, Any] | None, message: str) -> None:
    found = h.problem(route, OWNER, "web")
    assert found is not None and message in found and "ml/web" in found


def test_a_good_route_has_no_problem() -> None:
    assert h.problem(user_route(), OWNER, "web") is None


def test_accepted_needs_the_current_generation_and_resolved_refs() -> None:
    route = user_route()
    assert h.accepted(route)
    stale = copy.deepcopy(route)
    stale["metadata"]["generation"] = 2
    assert not h.accepted(stale)
    unresolved = copy.deepcopy(route)
    unresolved["status"]["parents"][0]["conditions"][1]["status"] = "False"
    assert not h.accepted(unresolved)
    no_refs_reported = copy.deepcopy(route)
    no_refs_reported["status"]["parents"][0]["conditions"].pop()
    assert h.accepted(no_refs_reported)
