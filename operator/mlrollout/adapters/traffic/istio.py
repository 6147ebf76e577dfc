"""Istio VirtualService, pure: the user's service with the operator's http entries, weights read back.

The user owns the VirtualService and routes an http entry (all of them, or the one named by
spec.traffic.istio.routeName) to the ModelDeployment's Service. While a candidate runs, that entry's
destinations become the stable and canary track Services with weights (same host form as the user
wrote: short name or FQDN), an optional mirror with mirrorPercentage, and named entries
(`mlrollout-...`) go right before it: the tester pin and the sticky buckets (Istio takes the first
entry that matches). No candidate, or a delete, puts the user's entry back on the Service.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.traffic import routing as r
from mlrollout.api import names
from mlrollout.api.status import Weights

GROUP, VERSION, PLURAL, KIND = "networking.istio.io", "v1", "virtualservices", "VirtualService"
ENTRY_PREFIX = "mlrollout-"
VirtualService = dict[str, Any]


def where(name: str, namespace: str) -> str:
    return f"VirtualService {namespace}/{name} (spec.traffic.istio.virtualService)"


def _split_host(host: str, owner: Owner) -> tuple[str, str] | None:
    """(service name, suffix) for a host naming a Service of this ModelDeployment's namespace."""
    service, _, rest = host.partition(".")
    suffixes = ("", owner.namespace, f"{owner.namespace}.svc", f"{owner.namespace}.svc.cluster.local")
    return (service, f".{rest}" if rest else "") if rest in suffixes else None


def _track_of(host: str, owner: Owner) -> str | None:
    """ "" for the main Service, the track for a track Service, None for anybody else's host."""
    split = _split_host(host, owner)
    if split is None:
        return None
    if split[0] == names.service_name(owner.name):
        return ""
    for track in (names.TRACK_STABLE, names.TRACK_CANARY):
        if split[0] == r.track_service_name(owner.name, track):
            return track
    return None


def _routes_ours(entry: Mapping[str, Any], owner: Owner) -> bool:
    return any(
        _track_of(str((d.get("destination") or {}).get("host", "")), owner) is not None
        for d in entry.get("route") or []
    )


def _managed(entry: Mapping[str, Any]) -> bool:
    return str(entry.get("name", "")).startswith(ENTRY_PREFIX)


def _candidates(vs: Mapping[str, Any], owner: Owner, route_name: str | None) -> list[int]:
    """Indexes (among the user's entries) of the entries the operator manages."""
    user = [e for e in (vs.get("spec") or {}).get("http") or [] if not _managed(e)]
    return [
        i
        for i, e in enumerate(user)
        if _routes_ours(e, owner) and (route_name is None or e.get("name") == route_name)
    ]


def problem(vs: Mapping[str, Any] | None, owner: Owner, name: str, route_name: str | None) -> str | None:
    at = where(name, owner.namespace)
    claimed = r.claim_problem(vs, owner, at)
    if claimed is not None or vs is None:
        return claimed
    picked = _candidates(vs, owner, route_name)
    if not picked:
        named = f"an http route named {route_name}" if route_name else "an http route"
        return f"{at} has {named} to host {names.service_name(owner.name)}: none found"
    user = [e for e in (vs.get("spec") or {}).get("http") or [] if not _managed(e)]
    for i in picked:
        foreign = [
            str((d.get("destination") or {}).get("host"))
            for d in user[i].get("route") or []
            if _track_of(str((d.get("destination") or {}).get("host", "")), owner) is None
        ]
        if foreign:
            return (
                f"{at}: an http route sends traffic to {names.service_name(owner.name)} and to "
                f"{', '.join(foreign)}; the operator needs a route of its own"
            )
    return None


def _suffix(entry: Mapping[str, Any], owner: Owner) -> str:
    for d in entry.get("route") or []:
        split = _split_host(str((d.get("destination") or {}).get("host", "")), owner)
        if split is not None:
            return split[1]
    return ""


def _destination(service: str, suffix: str, weight: int | None = None) -> dict[str, Any]:
    # No port: every Service of a ModelDeployment has one, and the user's entry comes back as written.
    dest: dict[str, Any] = {"destination": {"host": service + suffix}}
    if weight is not None:
        dest["weight"] = weight
    return dest


def _with_headers(
    matches: list[Mapping[str, Any]], headers: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    out = []
    for match in matches or [{}]:
        narrowed = copy.deepcopy(dict(match))
        narrowed["headers"] = {**(narrowed.get("headers") or {}), **copy.deepcopy(headers)}
        out.append(narrowed)
    return out


def _managed_entries(
    index: int, entry: Mapping[str, Any], owner: Owner, want: r.Routing
) -> list[dict[str, Any]]:
    assert want.canary_weight is not None
    suffix = _suffix(entry, owner)
    matches = list(entry.get("match") or [])
    canary = r.track_service_name(owner.name, names.TRACK_CANARY)
    stable = r.track_service_name(owner.name, names.TRACK_STABLE)
    out = [
        {
            "name": f"{ENTRY_PREFIX}pin-{index}",
            "match": _with_headers(matches, {r.PIN_HEADER: {"exact": r.PIN_VALUE}}),
            "route": [_destination(canary, suffix)],
        }
    ]
    if want.sticky is not None:
        cut = r.candidate_buckets(want.canary_weight)
        for track, service, low, high in (("canary", canary, 0, cut), ("stable", stable, cut, r.BUCKETS)):
            found = r.sticky_matches(want.sticky, low, high)
            if found is not None:
                out.append(
                    {
                        "name": f"{ENTRY_PREFIX}sticky-{track}-{index}",
                        "match": _with_headers(matches, {found[0].lower(): {"regex": found[1]}}),
                        "route": [_destination(service, suffix)],
                    }
                )
    return out


def _is_our_mirror(entry: Mapping[str, Any], owner: Owner) -> bool:
    host = str((entry.get("mirror") or {}).get("host", ""))
    split = _split_host(host, owner)
    return split is not None and split[0] in {r.track_service_name(owner.name, t) for t in names.TRACKS}


def _user_entry(entry: Mapping[str, Any], owner: Owner, want: r.Routing) -> dict[str, Any]:
    out = copy.deepcopy(dict(entry))
    suffix = _suffix(entry, owner)
    if want.canary_weight is None:
        out["route"] = [_destination(names.service_name(owner.name), suffix)]
    else:
        out["route"] = [
            _destination(
                r.track_service_name(owner.name, names.TRACK_STABLE), suffix, 100 - want.canary_weight
            ),
            _destination(r.track_service_name(owner.name, names.TRACK_CANARY), suffix, want.canary_weight),
        ]
    if _is_our_mirror(out, owner):
        out.pop("mirror", None)
        out.pop("mirrorPercentage", None)
    if want.mirror_percent > 0 and want.canary_weight is not None:
        out["mirror"] = {"host": r.track_service_name(owner.name, want.mirror_track) + suffix}
        out["mirrorPercentage"] = {"value": float(want.mirror_percent)}
    return out


def render(vs: Mapping[str, Any], owner: Owner, want: r.Routing, route_name: str | None) -> VirtualService:
    out: VirtualService = copy.deepcopy(dict(vs))
    user = [e for e in (vs.get("spec") or {}).get("http") or [] if not _managed(e)]
    picked = set(_candidates(vs, owner, route_name))
    http: list[dict[str, Any]] = []
    for index, entry in enumerate(user):
        if index not in picked:
            http.append(copy.deepcopy(entry))
            continue
        if want.canary_weight is not None:
            http += _managed_entries(index, entry, owner, want)
        http.append(_user_entry(entry, owner, want))
    out.setdefault("spec", {})["http"] = http
    out.setdefault("metadata", {}).setdefault("annotations", {})[r.ANNOTATION_MANAGED_BY] = owner.name
    return out


def restored(vs: Mapping[str, Any], owner: Owner, route_name: str | None) -> VirtualService:
    out = render(vs, owner, r.Routing(canary_weight=None), route_name)
    annotations = out["metadata"]["annotations"]
    annotations.pop(r.ANNOTATION_MANAGED_BY, None)
    if not annotations:
        out["metadata"].pop("annotations")
    return out


def read_weights(vs: Mapping[str, Any], owner: Owner, route_name: str | None) -> Weights | None:
    user = [e for e in (vs.get("spec") or {}).get("http") or [] if not _managed(e)]
    shares = set()
    for i in _candidates(vs, owner, route_name):
        weights: dict[str, int] = {}
        destinations = user[i].get("route") or []
        for d in destinations:
            track = _track_of(str((d.get("destination") or {}).get("host", "")), owner)
            if track is not None:
                # Istio: a lone destination without weight takes everything.
                default = 100 if len(destinations) == 1 else 0
                key = track or names.TRACK_STABLE
                weights[key] = weights.get(key, 0) + int(d.get("weight", default))
        total = sum(weights.values())
        shares.add(0 if total == 0 else round(100 * weights.get(names.TRACK_CANARY, 0) / total))
    if len(shares) != 1:
        return None
    canary = shares.pop()
    return Weights(stable=100 - canary, canary=canary)
