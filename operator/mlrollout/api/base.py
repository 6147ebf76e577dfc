"""The base of every API model: camelCase aliases, frozen, and cross-field rules kept in one place.

A `Rule` carries its CEL expression (enforced by the API server through x-kubernetes-validations)
and the same check in Python (enforced when the operator parses a spec), under one message, so the
CRD and the models cannot drift apart silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str | None = None


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, validate_default=True
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).cel_rules:
            if not rule.holds(self):
                where = f"{rule.field_path.lstrip('.')}: " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.cel_rules:
            target["x-kubernetes-validations"] = [_rule_schema(rule) for rule in cls.cel_rules]
        return schema


def _rule_schema(rule: Rule) -> dict[str, str]:
    out = {"rule": rule.cel, "message": rule.message}
    if rule.field_path:
        out["fieldPath"] = rule.field_path
    return out


def exactly_one(*values: object) -> bool:
    return sum(v is not None for v in values) == 1


def ordered(low: float | None, high: float | None) -> bool:
    return low is None or high is None or low <= high


def cel_exactly_one(*fields: str) -> str:
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].filter(x, x).size() == 1"


_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_CRON_ATOM = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]{1,2})?"
_CRON_FIELD = rf"{_CRON_ATOM}(,{_CRON_ATOM})*"
CRON_PATTERN = rf"^(@(yearly|annually|monthly|weekly|daily|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"

_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^(\+|-)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, description="A duration such as 30s, 5m, 1h30m or 7d."),
]
Cron = Annotated[str, Field(pattern=CRON_PATTERN, max_length=128, description="A 5-field cron expression.")]
Quantity = Annotated[int | Annotated[str, Field(pattern=QUANTITY_PATTERN)], Field(description="A quantity.")]
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=63)]
Percent = Annotated[int, Field(ge=0, le=100)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def list_map(*keys: str) -> dict[str, Any]:
    """Schema markers for a list keyed by `keys`: server-side apply merges items by key, not by index."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def parse_duration(text: str) -> timedelta:
    """Parse a Duration ("1h30m"); raises ValueError on anything the CRD pattern would reject."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration: {text!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)
