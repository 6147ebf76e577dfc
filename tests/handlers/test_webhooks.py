"""MLflow webhook deliveries: signature checked as MLflow 3 makes it, 401 and nothing woken otherwise."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
import uuid

import pytest

from harness.procs import free_port
from mlrollout.handlers import endpoints, webhooks

SECRET = "s3cret-shared-with-mlflow"


def delivery(
    body: dict[str, object], secret: str = SECRET, at: float | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as MLflow's own delivery code builds them (its signing function)."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    payload = json.dumps(body)
    delivery_id, timestamp = str(uuid.uuid4()), str(int(at if at is not None else time.time()))
    headers = {
        "Content-Type": "application/json",
        webhooks.DELIVERY_ID_HEADER: delivery_id,
        webhooks.TIMESTAMP_HEADER: timestamp,
        webhooks.SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, timestamp, payload),
    }
    return headers, payload.encode()


ALIAS_SET = {
    "entity": "model_version_alias",
    "action": "created",
    "timestamp": "2026-11-23T12:00:00+00:00",
    "data": {"name": "churn", "alias": "champion", "version": "4"},
}


def test_our_signature_is_mlflows() -> None:
    headers, body = delivery(ALIAS_SET)
    assert (
        webhooks.sign(SECRET, headers[webhooks.DELIVERY_ID_HEADER], headers[webhooks.TIMESTAMP_HEADER], body)
        == (headers[webhooks.SIGNATURE_HEADER])
    )
    webhooks.verify(SECRET, headers, body, time.time())
    event = webhooks.parse(body, "d1")
    assert event == webhooks.ModelEvent("model_version_alias", "created", "churn", "d1")


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda h, b: ({**h, webhooks.SIGNATURE_HEADER: "v1,AAAA"}, b), "does not match"),
        (lambda h, b: (h, b.replace(b"churn", b"fraud")), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != webhooks.SIGNATURE_HEADER}, b), "missing"),
        (lambda h, b: ({**h, webhooks.TIMESTAMP_HEADER: "yesterday"}, b), "Unix time"),
    ],
)
def test_tampered_or_unsigned_deliveries_are_rejected(tamper, reason) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(*delivery(ALIAS_SET))
    with pytest.raises(webhooks.Rejected, match=reason):
        webhooks.verify(SECRET, headers, body, time.time())


def test_another_secret_and_a_replay_are_rejected() -> None:
    headers, body = delivery(ALIAS_SET, secret="not-ours")
    with pytest.raises(webhooks.Rejected, match="does not match"):
        webhooks.verify(SECRET, headers, body, time.time())
    headers, body = delivery(ALIAS_SET, at=time.time() - 3600)
    with pytest.raises(webhooks.Rejected, match="away from now"):
        webhooks.verify(SECRET, headers, body, time.time())


def test_events_that_cannot_move_a_resolution_are_ignored() -> None:
    for entity in ("prompt", "model_version_tag"):
        assert (
            webhooks.parse(
                json.dumps({"entity": entity, "action": "set", "data": {"name": "x"}}).encode(), "d"
            )
            is None
        )
    new_version = {"entity": "model_version", "action": "created", "data": {"name": "churn", "version": "5"}}
    assert webhooks.parse(json.dumps(new_version).encode(), "d") == webhooks.ModelEvent(
        "model_version", "created", "churn", "d"
    )
    with pytest.raises(webhooks.Rejected, match="JSON"):
        webhooks.parse(b"<html>", "d")


def test_endpoint_wakes_on_a_good_delivery_and_answers_401_to_a_bad_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    woken: list[webhooks.ModelEvent] = []
    port = free_port()

    def post(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{endpoints.WEBHOOK_PATH}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def wake(event: webhooks.ModelEvent) -> int:
        woken.append(event)
        return 2

    async def scenario() -> None:
        ready = asyncio.Event()
        ready.set()
        runner = await endpoints.serve(
            port, ready, host="127.0.0.1", webhook_secret=SECRET, on_model_event=wake
        )
        try:
            code, answer = await asyncio.to_thread(post, *delivery(ALIAS_SET))
            assert (code, answer) == (200, {"woken": 2})
            assert [e.model_name for e in woken] == ["churn"]
            with caplog.at_level(logging.WARNING, logger=endpoints.__name__):
                code, answer = await asyncio.to_thread(post, *delivery(ALIAS_SET, secret="forged"))
            assert code == 401 and answer["error"] == "unauthorized"
            assert len(woken) == 1  # nothing triggered
            assert "refused: signature does not match" in caplog.text
            assert SECRET not in caplog.text and "forged" not in caplog.text
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_no_secret_no_endpoint() -> None:
    app = endpoints.app(asyncio.Event())
    assert not [
        r for r in app.router.routes() if r.resource and r.resource.canonical == endpoints.WEBHOOK_PATH
    ]
