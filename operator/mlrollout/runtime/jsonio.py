"""Fast JSON in and out (orjson), with the standard library as the lenient fallback (NaN literals)."""

from __future__ import annotations

import json
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
        # Python clients send NaN/Infinity literals, which strict JSON parsers refuse.
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"malformed JSON: {exc}"[:300], code="MALFORMED_REQUEST") from exc


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
