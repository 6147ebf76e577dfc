"""Fast JSON in and out (orjson), with the standard library as the lenient fallback (NaN literals)."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from mlrollout.runtime.schema import InputError


def loads(body: bytes) -> Any:
    if not body.strip():
        raise InputError("empty body: expected a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # Python clients send NaN literals, which strict JSON parsers refuse. Infinity and integers
        # beyond the float range are refused here: no model input or feedback value needs them.
        return json.loads(body, parse_int=_bounded_int, parse_constant=_constant)
    except InputError:
        raise
    except (ValueError, RecursionError) as exc:
        raise InputError(f"malformed JSON: {exc}"[:300], code="MALFORMED_REQUEST") from exc


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# The longest decimal integer that still converts to a finite float64 (about 1.8e308).
MAX_INT_DIGITS = 308


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InputError(f"integer of {len(text)} digits is out of range", code="OUT_OF_RANGE")
    return int(text)


def _constant(name: str) -> float:
    if name == "NaN":
        return math.nan
    raise InputError(f"{name} is not accepted: numbers must be finite", code="OUT_OF_RANGE")
