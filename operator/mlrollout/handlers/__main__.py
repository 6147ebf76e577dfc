"""`mlrollout-operator`: run the Kopf operator with a liveness endpoint."""

from __future__ import annotations

import logging

import kopf

from mlrollout.handlers.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    formats = {"json": kopf.LogFormat.JSON, "full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN}
    kopf.configure(
        verbose=settings.verbose, log_format=formats.get(settings.log_format, kopf.LogFormat.PLAIN)
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    import mlrollout.handlers.wiring  # noqa: F401  (registers the handlers)

    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        standalone=settings.peering is None,
        peering_name=settings.peering,
    )


if __name__ == "__main__":
    main()
