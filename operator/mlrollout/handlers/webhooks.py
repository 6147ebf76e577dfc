"""MLflow 3 model-registry webhooks: verify, then say which model changed.

MLflow signs `{delivery id}.{timestamp}.{body}` with HMAC-SHA256 under the webhook's secret and
sends `X-MLflow-Signature: v1,<base64 digest>`, `X-MLflow-Delivery-Id` and `X-MLflow-Timestamp`
(Unix seconds), as Standard Webhooks does. A stale timestamp is refused too, so a captured request
cannot be replayed later. Pure: the caller passes the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
TOLERANCE_SECONDS = 300.0
# Registry events that can change what an alias or version resolves to.
MODEL_ENTITIES = frozenset({"model_version", "model_version_alias", "registered_model"})


class Rejected(ValueError):
    """Why a delivery was refused (for the log and the 401's body; never echoes the secret)."""


@dataclass(frozen=True)
class ModelEvent:
    entity: str
    action: str
    model_name: str
    delivery_id: str


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    signed = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Raise Rejected unless the delivery is signed with `secret` and fresh."""
    signature = headers.get(SIGNATURE_HEADER)
    delivery_id = headers.get(DELIVERY_ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not delivery_id or not timestamp:
        raise Rejected(f"missing {SIGNATURE_HEADER}, {DELIVERY_ID_HEADER} or {TIMESTAMP_HEADER}")
    try:
        sent_at = float(timestamp)
    except ValueError:
        raise Rejected(f"{TIMESTAMP_HEADER} is not a Unix time") from None
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        raise Rejected(f"timestamp {timestamp} is more than {TOLERANCE_SECONDS:.0f} s away from now")
    expected = sign(secret, delivery_id, timestamp, body)
    # Several signatures may be sent (secret rotation), separated by spaces.
    if not any(hmac.compare_digest(expected, candidate) for candidate in signature.split()):
        raise Rejected("signature does not match the shared secret")


def parse(body: bytes, delivery_id: str) -> ModelEvent | None:
    """The model an event is about; None for events that cannot change a resolution (prompts, tags)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Rejected(f"body is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise Rejected("body is not a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise Rejected("body lacks entity, action or data")
    if entity not in MODEL_ENTITIES:
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise Rejected(f"{entity}.{action} event without a model name")
    return ModelEvent(entity, action, name, delivery_id)
