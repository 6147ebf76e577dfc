"""The operator's HTTP port: /healthz for the probes and /metrics for Prometheus, on one port (the
chart's Service and ServiceMonitor point at it). Kopf's own liveness endpoint serves one path only,
so the operator runs this server instead, in the same event loop: a stuck loop stops answering."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mlrollout.handlers import metrics

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


def app(ready: asyncio.Event) -> web.Application:
    """/healthz answers 503 until Kopf has run its startup handlers (`ready`), then 200."""

    async def healthz(_: web.Request) -> web.Response:
        if not ready.is_set():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    application = web.Application()
    application.add_routes([web.get(HEALTH_PATH, healthz), web.get(METRICS_PATH, scrape)])
    return application


async def serve(port: int, ready: asyncio.Event, host: str = "0.0.0.0") -> web.AppRunner:
    """Start listening; the caller cleans up with `await runner.cleanup()`."""
    runner = web.AppRunner(app(ready), handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
