"""Gateway API HTTPRoute, pure: the user's route with the operator's entries, the weights read back.

The user owns the route and points a rule at the ModelDeployment's Service. While a candidate runs,
the operator replaces that backendRef by the stable and canary track Services with weights, and puts
its own named rules (`mlrollout-...`) before the user's: a tester pin (`x-mlrollout-track: canary`)
and, for a sticky A/B test, the user buckets of each variant. Everything else in the route stays as
the user wrote it. Rendering is idempotent and replaces the operator's entries, never appends; with
no candidate (and on delete) the rule points at the Service again and the operator's rules go.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.traffic import routing as r
from mlrollout.api import names
from mlrollout.api.status import Weights

GROUP, VERSION, PLURAL, KIND = "gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"
RULE_PREFIX = "mlrollout-"
Route = dict[str, Any]


def _ours(owner: Owner) -> dict[str, str]:
    """Service names the operator may put in a backendRef -> the track (main Service: "")."""
    found = {names.service_name(owner.name): ""}
    for track in (names.TRACK_STABLE, names.TRACK_CANARY):
        found[r.track_service_name(owner.name, track)] = track
    return found


def _is_ours(ref: Mapping[str, Any], owner: Owner, namespace: str) -> bool:
    return (
        ref.get("group", "") in ("", "core")
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", namespace) == namespace
        and ref.get("name") in _ours(owner)
    )


def _managed_rule(rule: Mapping[str, Any]) -> bool:
    return str(rule.get("name", "")).startswith(RULE_PREFIX)


def _user_rules(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in (route.get("spec") or {}).get("rules") or [] if not _managed_rule(rule)]


def where(route_name: str, namespace: str) -> str:
    return f"HTTPRoute {namespace}/{route_name} (spec.traffic.gatewayAPI.httpRoute)"


def problem(route: Mapping[str, Any] | None, owner: Owner, route_name: str) -> str | None:
    """Why the operator cannot route through this route (None: it can); it then touches nothing."""
    at = where(route_name, owner.namespace)
    claimed = r.claim_problem(route, owner, at)
    if claimed is not None or route is None:
        return claimed
    rules = [
        rule
        for rule in _user_rules(route)
        if any(_is_ours(ref, owner, owner.namespace) for ref in rule.get("backendRefs") or [])
    ]
    if not rules:
        return f"{at} has no rule with a backendRef to Service {names.service_name(owner.name)}"
    for rule in rules:
        foreign = [
            ref.get("name")
            for ref in rule.get("backendRefs") or []
            if not _is_ours(ref, owner, owner.namespace)
        ]
        if foreign:
            return (
                f"{at}: a rule sends traffic to Service {names.service_name(owner.name)} and to "
                f"{', '.join(map(str, foreign))}; the operator needs a rule of its own"
            )
    if not any(_true(parent, "Accepted") for parent in _parents(route)):
        return f"{at} is not accepted by any Gateway (no controller reports it in status.parents)"
    return None


def _parents(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((route.get("status") or {}).get("parents") or [])


def _condition(parent: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in parent.get("conditions") or [] if c.get("type") == type_), None)


def _true(parent: Mapping[str, Any], type_: str, generation: int | None = None) -> bool:
    cond = _condition(parent, type_)
    if cond is None or cond.get("status") != "True":
        return False
    return generation is None or int(cond.get("observedGeneration", generation)) >= generation


def accepted(route: Mapping[str, Any]) -> bool:
    """The current generation is Accepted by a Gateway, with its refs resolved where it says so."""
    generation = int((route.get("metadata") or {}).get("generation", 1))
    for parent in _parents(route):
        refs = _condition(parent, "ResolvedRefs")
        if _true(parent, "Accepted", generation) and (
            refs is None or _true(parent, "ResolvedRefs", generation)
        ):
            return True
    return False


def _ref(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": r.SERVICE_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _with_headers(matches: list[Mapping[str, Any]], headers: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each of the user's matches, narrowed by `headers` (a rule without matches matches every path)."""
    out = []
    for match in matches or [{}]:
        narrowed = copy.deepcopy(dict(match))
        narrowed["headers"] = [*(narrowed.get("headers") or []), *copy.deepcopy(headers)]
        out.append(narrowed)
    return out


def _sticky_header(sticky: r.Sticky, low: int, high: int) -> dict[str, str] | None:
    found = r.sticky_matches(sticky, low, high)
    if found is None:
        return None
    return {"type": "RegularExpression", "name": found[0], "value": found[1]}


def _managed_rules(
    index: int, rule: Mapping[str, Any], owner: Owner, want: r.Routing
) -> list[dict[str, Any]]:
    """The operator's rules derived from the user's rule `index` (its matches, narrowed by header)."""
    assert want.canary_weight is not None
    matches = list(rule.get("matches") or [])
    canary = r.track_service_name(owner.name, names.TRACK_CANARY)
    stable = r.track_service_name(owner.name, names.TRACK_STABLE)
    pin = {"type": "Exact", "name": r.PIN_HEADER, "value": r.PIN_VALUE}
    pin_matches = _with_headers(matches, [pin])
    rules: list[dict[str, Any]] = []
    if want.sticky is not None:
        cut = r.candidate_buckets(want.canary_weight)
        # With a sticky key too, the pin must still win: more header matches take precedence.
        anyone = _sticky_header(want.sticky, 0, r.BUCKETS)
        assert anyone is not None
        pin_matches += _with_headers(matches, [pin, anyone])
        for track, service, low, high in (("canary", canary, 0, cut), ("stable", stable, cut, r.BUCKETS)):
            header = _sticky_header(want.sticky, low, high)
            if header is not None:
                rules.append(
                    {
                        "name": f"{RULE_PREFIX}sticky-{track}-{index}",
                        "matches": _with_headers(matches, [header]),
                        "backendRefs": [_ref(service)],
                    }
                )
    return [
        {"name": f"{RULE_PREFIX}pin-{index}", "matches": pin_matches, "backendRefs": [_ref(canary)]},
        *rules,
    ]


def _mirror_filter(owner: Owner, want: r.Routing) -> dict[str, Any]:
    return {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {
                "name": r.track_service_name(owner.name, want.mirror_track),
                "port": r.SERVICE_PORT,
            },
            "percent": want.mirror_percent,
        },
    }


def _is_our_mirror(f: Mapping[str, Any], owner: Owner) -> bool:
    target = ((f.get("requestMirror") or {}).get("backendRef") or {}).get("name")
    return f.get("type") == "RequestMirror" and target in {
        r.track_service_name(owner.name, t) for t in names.TRACKS
    }


def _user_rule(rule: Mapping[str, Any], owner: Owner, want: r.Routing) -> dict[str, Any]:
    out = copy.deepcopy(dict(rule))
    if want.canary_weight is None:
        out["backendRefs"] = [_ref(names.service_name(owner.name))]
    else:
        out["backendRefs"] = [
            _ref(r.track_service_name(owner.name, names.TRACK_STABLE), 100 - want.canary_weight),
            _ref(r.track_service_name(owner.name, names.TRACK_CANARY), want.canary_weight),
        ]
    filters = [f for f in out.get("filters") or [] if not _is_our_mirror(f, owner)]
    if want.mirror_percent > 0 and want.canary_weight is not None:
        filters.append(_mirror_filter(owner, want))
    if filters:
        out["filters"] = filters
    else:
        out.pop("filters", None)
    return out


def render(route: Mapping[str, Any], owner: Owner, want: r.Routing) -> Route:
    """The route with the operator's entries for `want`; the same input gives the same route."""
    out: Route = copy.deepcopy(dict(route))
    rules: list[dict[str, Any]] = []
    managed: list[dict[str, Any]] = []
    for index, rule in enumerate(_user_rules(route)):
        if not any(_is_ours(ref, owner, owner.namespace) for ref in rule.get("backendRefs") or []):
            rules.append(copy.deepcopy(rule))
            continue
        rules.append(_user_rule(rule, owner, want))
        if want.canary_weight is not None:
            managed += _managed_rules(index, rule, owner, want)
    out.setdefault("spec", {})["rules"] = [*managed, *rules]
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[r.ANNOTATION_MANAGED_BY] = owner.name
    return out


def restored(route: Mapping[str, Any], owner: Owner) -> Route:
    """The route as the user wrote it: the rule back on the Service, the operator's rules and mark gone."""
    out = render(route, owner, r.Routing(canary_weight=None))
    annotations = out["metadata"]["annotations"]
    annotations.pop(r.ANNOTATION_MANAGED_BY, None)
    if not annotations:
        out["metadata"].pop("annotations")
    return out


def read_weights(route: Mapping[str, Any], owner: Owner) -> Weights | None:
    """The split the route's managed rules carry (None: no rule of ours, or rules that disagree)."""
    shares = set()
    ours = _ours(owner)
    for rule in _user_rules(route):
        weights: dict[str, int] = {}
        for ref in rule.get("backendRefs") or []:
            if _is_ours(ref, owner, owner.namespace):
                track = ours[str(ref["name"])] or names.TRACK_STABLE
                weights[track] = weights.get(track, 0) + int(ref.get("weight", 1))
        if weights:
            total = sum(weights.values())
            shares.add(0 if total == 0 else round(100 * weights.get(names.TRACK_CANARY, 0) / total))
    if len(shares) != 1:
        return None
    canary = shares.pop()
    return Weights(stable=100 - canary, canary=canary)
