"""What a request-splitting router (Gateway API, Istio) is asked to serve, independent of its dialect,
and the pieces both dialects share: per-track Services, the tester pin and sticky buckets.

Sticky assignment without a hash in the data plane: a user's key (a header's value, or a cookie's)
is bucketed by its last two hexadecimal digits (256 buckets), and the candidate gets the first
round(256 * weight / 100) of them through a regular-expression match. The same key always lands on
the same variant; with random keys (UUIDs, hashes) the share of users on the candidate is the weight
within 1/256. Keys that do not end in two hex digits fall to the weighted, per-request split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec

PIN_HEADER = "x-mlrollout-track"  # `x-mlrollout-track: canary` pins a tester to the candidate
PIN_VALUE = names.TRACK_CANARY
BUCKETS = 256
HEX = "0123456789abcdef"
# The route's owner (the ModelDeployment in the route's namespace) while the operator manages it.
ANNOTATION_MANAGED_BY = f"{names.GROUP}/managed-by"
SERVICE_PORT = 80  # the port every Service of a ModelDeployment exposes


@dataclass(frozen=True)
class Sticky:
    """Where a user's key is read: a request header, or a cookie (by name)."""

    header: str | None = None
    cookie: str | None = None


@dataclass(frozen=True)
class Routing:
    """The operator's entries on the route. canary_weight None: no rollout (all to the main Service)."""

    canary_weight: int | None
    sticky: Sticky | None = None
    mirror_percent: int = 0
    mirror_track: str = names.TRACK_SHADOW


def manager(route: Mapping[str, Any]) -> str | None:
    """The ModelDeployment that manages the route's entries (None: none yet)."""
    found = ((route.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MANAGED_BY)
    return None if found is None else str(found)


def claim_problem(route: Mapping[str, Any] | None, owner: Owner, at: str) -> str | None:
    """A route missing, or managed by another ModelDeployment: the operator touches nothing."""
    if route is None:
        return f"{at} not found"
    other = manager(route)
    return f"{at} is managed by ModelDeployment {other}" if other not in (None, owner.name) else None


def routing_for(spec: ModelDeploymentSpec, canary_weight: int | None) -> Routing:
    ab = spec.strategy.ab_test
    sticky = None
    if ab is not None and ab.sticky is not None and canary_weight is not None:
        sticky = Sticky(header=ab.sticky.header, cookie=ab.sticky.cookie)
    return Routing(canary_weight=canary_weight, sticky=sticky)


def track_service_name(deployment: str, track: str) -> str:
    return names.serving_name(deployment, track)


def track_service(owner: Owner, spec: ModelDeploymentSpec, track: str) -> builders.Manifest:
    """A Service over one track's pods: what a route's backendRefs name to weigh tracks exactly."""
    manifest = builders.service(owner, spec, track)
    manifest["metadata"]["name"] = track_service_name(owner.name, track)
    manifest["metadata"]["annotations"] = {}
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = builders.spec_hash(manifest)
    return manifest


def candidate_buckets(weight: int) -> int:
    return round(BUCKETS * max(0, min(weight, 100)) / 100)


def _chars(digits: str) -> str:
    """A character class of hex digits, either case (ranges would span punctuation: listed instead)."""
    chars = "".join(dict.fromkeys(digits + digits.upper()))
    return chars if len(chars) == 1 else f"[{chars}]"


def bucket_pattern(low: int, high: int) -> str | None:
    """Alternatives matching two hex digits whose value is in [low, high); None if the range is empty."""
    low, high = max(low, 0), min(high, BUCKETS)
    if low >= high:
        return None
    parts = []
    for first in range(low // 16, (high - 1) // 16 + 1):
        lo, hi = max(low - 16 * first, 0), min(high - 16 * first, 16)
        parts.append(_chars(HEX[first]) + _chars(HEX[lo:hi]))
    return "(?:" + "|".join(parts) + ")"


def header_regex(low: int, high: int) -> str | None:
    """A header value whose last two characters are hex digits in [low, high) (RE2, whole value)."""
    pattern = bucket_pattern(low, high)
    return None if pattern is None else f"^.*{pattern}$"


def cookie_regex(cookie: str, low: int, high: int) -> str | None:
    """A Cookie header carrying `cookie` whose value ends in hex digits in [low, high)."""
    pattern = bucket_pattern(low, high)
    if pattern is None:
        return None
    name = "".join(f"\\{c}" if not c.isalnum() else c for c in cookie)
    return f"^(?:.*;\\s*)?{name}=[^;]*{pattern}(?:;.*)?$"


def bucket_of(key: str) -> int | None:
    """The bucket the regexes above put `key` in (None: not two trailing hex digits)."""
    tail = key[-2:].lower()
    if len(tail) != 2 or any(c not in HEX for c in tail):
        return None
    return int(tail, 16)


def sticky_matches(sticky: Sticky, low: int, high: int) -> tuple[str, str] | None:
    """(header name, regex) that selects the users in buckets [low, high)."""
    if sticky.header is not None:
        regex = header_regex(low, high)
        return None if regex is None else (sticky.header, regex)
    assert sticky.cookie is not None
    regex = cookie_regex(sticky.cookie, low, high)
    return None if regex is None else ("cookie", regex)
