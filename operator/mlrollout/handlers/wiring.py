"""Kopf handlers. Create, update, resume, delete and a per-object daemon all run the same reconcile();
on delete it runs behind the finalizer until no child is left. Kopf's bookkeeping stays in
mlrollout annotations, never in status.

The daemon honours the `requeue_after` each tick asks for (a pause that ends, the next analysis
measurement, a backoff), capped by the heartbeat, and is woken early when a change handler ticks.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict
from typing import Any

import kopf
from kubernetes import client, config

from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.metrics.prometheus import PrometheusProvider
from mlrollout.adapters.registry.credentials import MlflowCredentials, credentials_from_env
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api import names
from mlrollout.handlers.settings import Settings
from mlrollout.reconcile import Outcome, World, reconcile

log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
RESOURCE = (names.GROUP, names.VERSION, names.PLURAL)

# Timers run beside the change handlers in Kopf: one lock per object keeps ticks from overlapping.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
# When each object wants its next tick (seconds from its last one), and the event that wakes its daemon.
_requeue: dict[str, float] = {}
_wake: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
_world: World | None = None
_providers: dict[str, PrometheusProvider] = {}
MIN_REQUEUE = 0.2


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
        found = credentials_from_env()
        if not isinstance(found, MlflowCredentials):
            found = None  # unreadable credentials in env are reported by the registry calls failing
        creds = found
        _world = World(
            executor=executor,
            registry=lambda uri: MlflowRegistry(uri, creds),
            metrics=_provider,
        )
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


def _provider(address: str) -> PrometheusProvider:
    if address not in _providers:
        _providers[address] = PrometheusProvider(address)
    return _providers[address]


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
    if outcome.requeue_after is not None:
        _requeue[uid] = max(outcome.requeue_after, MIN_REQUEUE)
        _wake[uid].set()
    else:
        _requeue.pop(uid, None)
    return outcome


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
@kopf.on.resume(*RESOURCE)
async def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    await _tick(body, logger)


@kopf.daemon(*RESOURCE, cancellation_backoff=1.0)
async def ticker(body: kopf.Body, logger: kopf.Logger, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Ticks when the last tick asked to (requeue_after), at the latest every heartbeat."""
    uid = body.metadata["uid"]
    wake = _wake[uid]
    while not stopped:
        delay = min(_requeue.get(uid, SETTINGS.heartbeat_seconds), SETTINGS.heartbeat_seconds)
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), timeout=delay)
            continue  # a change handler ticked and set a new requeue: wait for that instead
        except TimeoutError:
            pass
        if stopped or body.metadata.get("deletionTimestamp"):
            break
        await _tick(body, logger)


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    outcome = await _tick(body, logger)
    if outcome is None or outcome.requeue_after is not None:
        raise kopf.TemporaryError("child objects are still being deleted", delay=1)
    for table in (_locks, _requeue, _wake):
        table.pop(body.metadata["uid"], None)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: Kopf's body may change under a thread while the tick runs."""
    return copy.deepcopy(dict(body))
