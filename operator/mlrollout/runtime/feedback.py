"""/feedback, bounded: what a caller may send before it becomes a Prometheus label or a counter.

Outcome names are Prometheus label values, so only the configured ones are accepted (`label`, the
ground truth, and the A/B test's business metric): any other string would create a new series.
Values feed counters that never go down, so they must be finite and in range: [0, 1] for a
proportion metric, [0, MAX_VALUE] for a mean. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlrollout.runtime.schema import InputError

LABEL_OUTCOME = "label"  # ground truth for accuracy monitoring: always accepted
MAX_VALUE = 1e12
MAX_ITEMS = 1000
MAX_REQUEST_ID = 128
Kind = Literal["proportion", "mean"]
_OUTCOME_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Item:
    request_id: str
    label: Any
    outcome: str
    value: float | None


def parse_outcomes(entries: tuple[str, ...]) -> dict[str, Kind]:
    """`name` or `name=proportion|mean` (Settings.feedback_outcomes) -> {name: kind}."""
    out: dict[str, Kind] = {}
    for entry in entries:
        name, _, kind = entry.partition("=")
        kind = kind or "mean"
        if not _OUTCOME_NAME.match(name) or kind not in ("proportion", "mean"):
            raise ValueError(f"feedback outcome {entry!r}: expected name[=proportion|mean]")
        out[name] = "proportion" if kind == "proportion" else "mean"
    return out


def authorized(token: str, header: str | None) -> bool:
    """No token configured: open. Otherwise `Authorization: Bearer <token>`, compared in constant time."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def parse(doc: Any, outcomes: Mapping[str, Kind]) -> list[Item]:
    """A body {request_id, label | outcome [, value]} or {feedback: [...]} -> items, or InputError."""
    items = doc.get("feedback", [doc]) if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError("body must be {request_id, label | outcome [, value]} or {feedback: [...]}")
    if len(items) > MAX_ITEMS:
        raise InputError(f"at most {MAX_ITEMS} feedback items per request, got {len(items)}")
    return [_item(i, it, outcomes) for i, it in enumerate(items)]


def _item(i: int, it: Any, outcomes: Mapping[str, Kind]) -> Item:
    if not isinstance(it, dict):
        raise InputError(f"feedback item {i}: must be an object")
    rid = it.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_REQUEST_ID or not rid.isprintable():
        raise InputError(f"feedback item {i}: needs a non-empty printable string request_id (<= 128 chars)")
    if "label" not in it and "outcome" not in it:
        raise InputError(f"feedback item {i}: needs a label or an outcome")
    outcome = it.get("outcome", LABEL_OUTCOME)
    if outcome != LABEL_OUTCOME and (not isinstance(outcome, str) or outcome not in outcomes):
        known = ", ".join([LABEL_OUTCOME, *sorted(outcomes)])
        raise InputError(
            f"feedback item {i}: unknown outcome {str(outcome)[:64]!r}; this server accepts: {known}",
            code="UNKNOWN_OUTCOME",
        )
    value = it.get("value")
    if value is not None:
        top = 1.0 if outcomes.get(outcome) == "proportion" else MAX_VALUE
        # Range first: comparing a huge int never overflows, math.isfinite on one would.
        if type(value) not in (int, float) or not 0.0 <= value <= top or not math.isfinite(value):
            raise InputError(
                f"feedback item {i}: value must be a finite number within [0, {top:g}], "
                f"got {str(value)[:40]}",
                code="OUT_OF_RANGE",
            )
        value = float(value)
    return Item(rid, it.get("label"), outcome, value)
