"""Kopf handlers. Create, update, resume, delete and a per-object daemon all run the same reconcile();
the daemon ticks again after min(requeue_after, heartbeat), woken early by changes. On delete it runs
behind the finalizer until no child is left. Kopf's bookkeeping stays in
mlrollout annotations, never in status."""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client, config

from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api import names
from mlrollout.api.status import Phase
from mlrollout.handlers import metric_names, metrics
from mlrollout.handlers.requeue import run_ticks
from mlrollout.handlers.settings import Settings
from mlrollout.reconcile import Outcome, World, reconcile
from mlrollout.reconcile.loop import ActionFailed, MetricsSource

log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
RESOURCE = (names.GROUP, names.VERSION, names.PLURAL)
# One Helm release per shard: each operator sees only the ModelDeployments its selector matches.
LABELS: dict[str, Any] | None = {k: kopf.PRESENT if v is None else v for k, v in SETTINGS.selector} or None

# Timers run beside the change handlers in Kopf: one lock per object keeps ticks from overlapping.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
_wakeups: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
_seen: dict[str, tuple[object, ...]] = {}
_world: World | None = None
RETRY_FAILED_ACTION = 5.0


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
        _world = World(
            executor=executor,
            registry=lambda uri: MlflowRegistry(uri),
            metrics=_metrics(),
            job_service_account=SETTINGS.job_service_account,
        )
    return _world


def _metrics() -> Callable[[str], MetricsSource] | None:
    """The Prometheus adapter when installed (it lands with the analysis feature); without it an
    analysis step pauses with MetricsUnavailable rather than guessing."""
    try:
        module: Any = importlib.import_module("mlrollout.adapters.metrics.prometheus")
    except ImportError:
        return None
    provider: Callable[[str], MetricsSource] = lambda address: module.PrometheusProvider(address, 10.0)  # noqa: E731
    return provider


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
            with metrics.timed_tick(_error_kind):
                outcome = await asyncio.to_thread(reconcile, _plain(body), world())
        except ActionFailed as e:  # nothing recorded: the next tick decides the same actions again
            logger.warning("%s; retrying in %ss", e, RETRY_FAILED_ACTION)
            phase = Phase(body.get("status", {}).get("phase") or Phase.PENDING)
            return Outcome(phase=phase, requeue_after=RETRY_FAILED_ACTION, acted=False)
        except client.ApiException as e:
            if e.status == 409:  # the object changed while we decided: the next tick decides again
                logger.debug("conflict writing status; retrying on the next tick")
                return None
            raise kopf.TemporaryError(
                f"API error {e.status}: {e.reason}: {_api_message(e)}", delay=SETTINGS.heartbeat_seconds
            ) from e
    if outcome.acted:
        logger.debug("phase %s, requeue %s", outcome.phase, outcome.requeue_after)
    return outcome


@kopf.on.create(*RESOURCE, labels=LABELS)
@kopf.on.update(*RESOURCE, labels=LABELS)
@kopf.on.resume(*RESOURCE, labels=LABELS)
async def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    _wakeups[body.metadata["uid"]].set()
    await _tick(body, logger)


@kopf.on.event(*RESOURCE, labels=LABELS)
async def on_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """Every state the watch shows feeds /metrics (the monitor's status writes too). A user's change
    (spec, a request, a pause) and a new monitor run wake the object's daemon at once; the
    operator's own status writes do not (they would spin the loop)."""
    if type == "DELETED":
        metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
        return
    metrics.observe(body)
    uid = body.metadata["uid"]
    annotations = body.metadata.annotations
    monitoring = (body.get("status") or {}).get("monitoring") or {}
    key = (
        body.metadata.get("generation"),
        annotations.get(names.ANNOTATION_REQUEST),
        annotations.get(names.ANNOTATION_PAUSED),
        monitoring.get("lastRun"),  # a new monitor verdict may start a retraining
    )
    if _seen.get(uid) != key:
        _seen[uid] = key
        _wakeups[uid].set()


@kopf.daemon(*RESOURCE, labels=LABELS, cancellation_timeout=5.0, initial_delay=0.5)
async def ticker(body: kopf.Body, logger: kopf.Logger, stopped: kopf.DaemonStopped, **_: Any) -> None:
    async def tick() -> float | None:
        outcome = await _tick(body, logger)
        return 1.0 if outcome is None else outcome.requeue_after

    await run_ticks(tick, _wakeups[body.metadata["uid"]], SETTINGS.heartbeat_seconds, lambda: bool(stopped))


@kopf.on.delete(*RESOURCE, labels=LABELS)
async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    outcome = await _tick(body, logger)
    if outcome is None or outcome.requeue_after is not None:
        raise kopf.TemporaryError("child objects are still being deleted", delay=1)
    metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
    _locks.pop(body.metadata["uid"], None)
    _wakeups.pop(body.metadata["uid"], None)
    _seen.pop(body.metadata["uid"], None)


def _api_message(error: client.ApiException) -> str:
    """The API server's own words (which verb on which resource was refused, or a namespace being
    terminated): without them a 403 in the log cannot be told from a missing RBAC rule."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.body or "")[:300]


def _error_kind(e: Exception) -> str:
    if isinstance(e, ActionFailed):
        return metric_names.ERROR_ACTION_FAILED
    if isinstance(e, client.ApiException):
        return metric_names.ERROR_CONFLICT if e.status == 409 else metric_names.ERROR_API
    return metric_names.ERROR_UNEXPECTED


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: Kopf's body may change under a thread while the tick runs."""
    return copy.deepcopy(dict(body))
