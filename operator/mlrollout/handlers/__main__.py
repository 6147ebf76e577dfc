"""`mlrollout-operator`: run the Kopf operator with /healthz and /metrics on the health port."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from mlrollout.handlers import endpoints, peering
from mlrollout.handlers.settings import Settings


async def run(settings: Settings) -> None:
    from mlrollout.handlers import wiring  # registers the handlers

    if settings.peering is not None:  # before Kopf starts: no replica ever runs without it
        await asyncio.to_thread(peering.ensure, wiring.api_client(), settings.peering, settings.namespaces)
    ready = asyncio.Event()  # set by Kopf once the startup handlers have run
    runner = await endpoints.serve(
        settings.health_port,
        ready,
        webhook_secret=settings.webhook_secret,
        on_model_event=wiring.on_model_event,
        host=settings.health_host,
    )
    try:
        await kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=settings.peering is None,
            peering_name=settings.peering,
            ready_flag=ready,
        )
    finally:
        await asyncio.shield(runner.cleanup())


def main() -> None:
    settings = Settings.from_env()
    formats = {"json": kopf.LogFormat.JSON, "full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN}
    kopf.configure(
        verbose=settings.verbose, log_format=formats.get(settings.log_format, kopf.LogFormat.PLAIN)
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with contextlib.suppress(asyncio.CancelledError):  # what kopf.run does on a signal
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
