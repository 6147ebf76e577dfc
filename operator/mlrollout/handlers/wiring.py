"""Kopf handlers. Create, update, resume, delete and a timer heartbeat all run the same reconcile();
on delete it runs behind the finalizer until no child is left. Kopf's bookkeeping stays in
mlrollout annotations, never in status."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict
from typing import Any

import kopf
from kubernetes import client, config

from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api import names
from mlrollout.handlers.settings import Settings
from mlrollout.reconcile import Outcome, World, reconcile

log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
RESOURCE = (names.GROUP, names.VERSION, names.PLURAL)

# Timers run beside the change handlers in Kopf: one lock per object keeps ticks from overlapping.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
_world: World | None = None


def _api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def world() -> World:
    global _world
    if _world is None:
        executor = KubeExecutor(_api_client(), instance=SETTINGS.instance)
        _world = World(executor=executor, registry=lambda uri: MlflowRegistry(uri))
    return _world


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = names.FINALIZER
    prefix = names.KOPF_ANNOTATION_PREFIX
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    # The operator posts its own Events (phase transitions, problems); Kopf's would be noise.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 16
    world()


async def _tick(body: kopf.Body, logger: kopf.Logger) -> Outcome | None:
    uid = body.metadata["uid"]
    async with _locks[uid]:
        try:
            outcome = await asyncio.to_thread(reconcile, _plain(body), world())
        except client.ApiException as e:
            if e.status == 409:  # the object changed while we decided: the next tick decides again
                logger.debug("conflict writing status; retrying on the next tick")
                return None
            raise kopf.TemporaryError(
                f"API error {e.status}: {e.reason}", delay=SETTINGS.heartbeat_seconds
            ) from e
    if outcome.acted:
        logger.debug("phase %s, requeue %s", outcome.phase, outcome.requeue_after)
    return outcome


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
@kopf.on.resume(*RESOURCE)
async def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    await _tick(body, logger)


@kopf.timer(*RESOURCE, interval=SETTINGS.heartbeat_seconds, initial_delay=SETTINGS.heartbeat_seconds)
async def heartbeat(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    await _tick(body, logger)


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    outcome = await _tick(body, logger)
    if outcome is None or outcome.requeue_after is not None:
        raise kopf.TemporaryError("child objects are still being deleted", delay=1)
    _locks.pop(body.metadata["uid"], None)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: Kopf's body may change under a thread while the tick runs."""
    return copy.deepcopy(dict(body))
