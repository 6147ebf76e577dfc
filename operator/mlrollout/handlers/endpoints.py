"""The operator's HTTP port: /healthz for the probes and /metrics for Prometheus, on one port (the
chart's Service and ServiceMonitor point at it). Kopf's own liveness endpoint serves one path only,
so the operator runs this server instead, in the same event loop: a stuck loop stops answering.

With a webhook secret it also takes MLflow's model-registry webhooks on WEBHOOK_PATH: a delivery with a
valid signature wakes the ModelDeployments that serve the model; a bad one gets 401, wakes nothing
and is logged with the reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from mlrollout.handlers import metrics, webhooks

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
WEBHOOK_PATH = "/webhooks/mlflow"
MAX_WEBHOOK_BODY = 1 << 20  # MLflow's payloads are small; refuse anything near this
log = logging.getLogger(__name__)

OnModelEvent = Callable[[webhooks.ModelEvent], int]


def app(
    ready: asyncio.Event,
    webhook_secret: str | None = None,
    on_model_event: OnModelEvent | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """/healthz answers 503 until Kopf has run its startup handlers (`ready`), then 200."""

    async def healthz(_: web.Request) -> web.Response:
        if not ready.is_set():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    application = web.Application(client_max_size=MAX_WEBHOOK_BODY)
    application.add_routes([web.get(HEALTH_PATH, healthz), web.get(METRICS_PATH, scrape)])
    if webhook_secret and on_model_event is not None:
        application.add_routes([web.post(WEBHOOK_PATH, _webhook(webhook_secret, on_model_event, clock))])
    return application


def _webhook(
    secret: str, on_model_event: OnModelEvent, clock: Callable[[], float]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhooks.verify(secret, request.headers, body, clock())
            event = webhooks.parse(body, request.headers.get(webhooks.DELIVERY_ID_HEADER, ""))
        except webhooks.Rejected as e:
            log.warning("MLflow webhook from %s refused: %s", request.remote, e)
            metrics.WEBHOOKS.labels("rejected").inc()
            return web.json_response({"error": "unauthorized", "reason": str(e)}, status=401)
        if event is None:
            metrics.WEBHOOKS.labels("ignored").inc()
            return web.json_response({"woken": 0, "ignored": True})
        woken = on_model_event(event)
        metrics.WEBHOOKS.labels("accepted").inc()
        log.info(
            "MLflow webhook %s.%s for model %r (delivery %s): woke %d ModelDeployment(s)",
            event.entity,
            event.action,
            event.model_name,
            event.delivery_id,
            woken,
        )
        return web.json_response({"woken": woken})

    return receive


async def serve(
    port: int,
    ready: asyncio.Event,
    host: str = "0.0.0.0",
    webhook_secret: str | None = None,
    on_model_event: OnModelEvent | None = None,
) -> web.AppRunner:
    """Start listening; the caller cleans up with `await runner.cleanup()`."""
    application = app(ready, webhook_secret, on_model_event)
    runner = web.AppRunner(application, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
