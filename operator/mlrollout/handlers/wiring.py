"""Kopf handlers. Reconciles are event-driven: a per-object daemon runs reconcile() when woken by a
change to the ModelDeployment (spec, request, pause, a monitor verdict), to a child it owns (watched
server-side filtered, see children.py) or by an MLflow webhook, and otherwise only when time is the
trigger: decide()'s requeue_after (a pause, an analysis interval, a backoff) or the slow resync.
Reconciles run in a bounded pool; API errors back off exponentially. On delete the same reconcile runs
behind the finalizer until no child is left. Kopf's bookkeeping stays in mlrollout annotations.

The children's watches also fill the operator's copy of them (adapters/k8s/cache.py), which a
reconcile reads instead of the API server. An object's first reconcile and the slow resync read the
API server afresh and refill the copy, so no reconcile acts on a half-listed copy at start-up and a
missed or dropped watch event is set right at the resync. (Not Kopf indexes: Kopf holds every
handler until each indexed object is listed, with one wake-up of every waiting object per object
indexed; a restart with 5,000 ModelDeployments and their 20,000 children did not reconcile once in
ten minutes.)"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import importlib
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import urllib3
from kubernetes import client, config

from mlrollout.adapters.k8s.cache import ChildCache
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.registry.cache import ResolutionCaches
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api import names
from mlrollout.api.status import Phase
from mlrollout.handlers import children, metric_names, metrics
from mlrollout.handlers.backoff import Backoff, retry_after
from mlrollout.handlers.requeue import Wakeup, run_ticks
from mlrollout.handlers.settings import Settings
from mlrollout.handlers.slots import Priority, PrioritySlots
from mlrollout.handlers.webhooks import ModelEvent
from mlrollout.reconcile import Outcome, World, reconcile
from mlrollout.reconcile.loop import ActionFailed, MetricsSource
from mlrollout.rollout.polls import ChildPoll

log = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
RESOURCE = (names.GROUP, names.VERSION, names.PLURAL)
# One Helm release per shard: each operator sees only the ModelDeployments its selector matches.
LABELS: dict[str, Any] | None = {k: kopf.PRESENT if v is None else v for k, v in SETTINGS.selector} or None
CHILD_LABELS = {names.LABEL_MANAGED_BY: names.MANAGED_BY}

# Timers run beside the change handlers in Kopf: one lock per object keeps ticks from overlapping.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
_wakeups: defaultdict[str, Wakeup] = defaultdict(Wakeup)
_fresh_at: dict[str, float] = {}  # when an object's reconcile last read the API server, not the cache
_seen: dict[str, tuple[object, ...]] = {}
# Who is who, from the ModelDeployments' own watch events (dropped on delete): children name their
# owner by label, webhooks name a model.
_uid_by_name: dict[tuple[str, str], str] = {}
_known: set[str] = set()
_model_of: dict[str, str] = {}
_child_keys: dict[str, str] = {}  # child uid -> change_key last seen (own no-op applies wake nothing)
_failures: dict[str, int] = {}  # consecutive API failures per object, for the backoff
_world: World | None = None
# The children as the watches show them (only when children are watched: not in the polling design).
CHILDREN: ChildCache | None = ChildCache() if SETTINGS.watch_children else None
# At most this many reconciles at once, whatever the number of objects woken together; a changed
# object's reconcile waits behind no resync (slots.py). The pool never queues: the slots admit only
# as many reconciles as it has threads.
_slots = PrioritySlots(SETTINGS.max_concurrent_reconciles)
_pool = ThreadPoolExecutor(max_workers=SETTINGS.max_concurrent_reconciles, thread_name_prefix="reconcile")
BACKOFF = Backoff(base=1.0, cap=max(SETTINGS.heartbeat_seconds, 30.0))
RETRY_FAILED_ACTION = 5.0
# A requeue that only waits for watched children (polls.ChildPoll): their events wake the reconcile,
# so the timer is only a safety net. Without it a thousand canaries rolling out at once asked for
# five hundred useless reconciles a second.
CHILD_POLL_WHEN_WATCHED = 30.0


def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def world() -> World:
    global _world
    if _world is None:
        executor = KubeExecutor(api_client(), instance=SETTINGS.instance, cache=CHILDREN)
        _world = World(
            executor=executor,
            registry=lambda uri: MlflowRegistry(uri),
            metrics=_metrics(),
            job_service_account=SETTINGS.job_service_account,
            resolutions=ResolutionCaches(ttl=SETTINGS.registry_resync_seconds),
        )
        resolutions = _world.resolutions
        metrics.REGISTRY_LOOKUPS.set_function(lambda: float(resolutions.asked if resolutions else 0))
        children_held = CHILDREN
        metrics.CACHED_CHILDREN.set_function(lambda: float(len(children_held) if children_held else 0))
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
    # Server-side filters: the API server sends only our shard and only our children, so neither
    # the watch traffic nor the per-object bookkeeping grows with what else runs in the cluster.
    if SETTINGS.selector:
        settings.watching.label_selectors[RESOURCE] = ",".join(
            k if v is None else f"{k}={v}" for k, v in SETTINGS.selector
        )
    for kind in children.WATCHED if SETTINGS.watch_children else ():
        settings.watching.label_selectors[kind.group, kind.version, kind.plural] = children.CHILD_SELECTOR
    # Peers with the same priority all pause (Kopf): each replica gets its own, the highest is active.
    settings.peering.priority = (
        SETTINGS.peering_priority if SETTINGS.peering_priority is not None else random.randint(1, 2**30)
    )
    settings.peering.lifetime = SETTINGS.peering_lifetime
    world()


async def _tick(
    body: kopf.Body,
    logger: kopf.Logger,
    started: list[int] | None = None,
    priority: Priority = Priority.CHANGE,
) -> Outcome | None:
    """One reconcile in the pool. `started` receives the object's wake count as the reconcile begins:
    wakes before that are covered by what it reads (a tick queued behind a burst absorbs them)."""
    uid = body.metadata["uid"]
    wakeup = _wakeups[uid]
    now = time.monotonic()
    # The first reconcile and the slow resync (MLROLLOUT_RESYNC_SECONDS) read the API server; the
    # registry's resync (which may be shorter) only asks the registry again, children from the copy.
    fresh = uid not in _fresh_at or now - _fresh_at[uid] >= SETTINGS.heartbeat_seconds
    seen = _plain(body)

    def run() -> Outcome:
        if started is not None:
            started.append(wakeup.count)
        return reconcile(seen, _fresh_world() if fresh else world())

    async with _locks[uid]:
        try:
            with metrics.timed_tick(_error_kind):
                async with _slots.slot(uid, priority):
                    outcome = await asyncio.get_running_loop().run_in_executor(_pool, run)
                if fresh:
                    _fresh_at[uid] = now
        except ActionFailed as e:  # nothing recorded: the next tick decides the same actions again
            logger.warning("%s; retrying in %ss", e, RETRY_FAILED_ACTION)
            return Outcome(phase=_phase(body), requeue_after=RETRY_FAILED_ACTION, acted=False)
        except client.ApiException as e:
            if e.status == 409:  # the object changed while we decided: the next tick decides again
                logger.debug("conflict writing status; retrying on the next tick")
                return None
            return _back_off(uid, body, logger, f"API error {e.status} {e.reason}: {_api_message(e)}", e)
        except urllib3.exceptions.HTTPError as e:  # the API server unreachable or the connection dropped
            return _back_off(uid, body, logger, f"API server unreachable: {e}", None)
    _failures.pop(uid, None)
    if outcome.acted:
        logger.debug("phase %s, requeue %s", outcome.phase, outcome.requeue_after)
    return outcome


def _back_off(
    uid: str, body: kopf.Body, logger: kopf.Logger, reason: str, error: client.ApiException | None
) -> Outcome:
    """Exponential, jittered, at least the server's Retry-After (a 429 from an overloaded server)."""
    failures = _failures[uid] = _failures.get(uid, 0) + 1
    headers = dict(error.headers or {}) if error is not None else None
    delay = BACKOFF.delay(failures, random.random(), retry_after(headers))
    metrics.API_BACKOFFS.labels(str(error.status if error is not None else 0)).inc()
    logger.warning("%s; backing off %.1f s (failure %d in a row)", reason[:400], delay, failures)
    return Outcome(phase=_phase(body), requeue_after=delay, acted=False)


def _fresh_world() -> World:
    """The world whose reads go to the API server (and refresh the cache): the slow resync's."""
    current = world()
    return dataclasses.replace(current, executor=current.executor.uncached())


def _phase(body: kopf.Body) -> Phase:
    return Phase(body.get("status", {}).get("phase") or Phase.PENDING)


def wake(uid: str, cause: str) -> None:
    if uid in _known:  # a child of another shard's object wakes nothing here
        metrics.WAKEUPS.labels(cause).inc()
        priority = Priority.CHANGE if cause == metric_names.WAKE_CHANGE else Priority.DUE
        _wakeups[uid].set(priority)
        _slots.bump(uid, priority)  # its reconcile may already be waiting for a slot


@kopf.on.event(*RESOURCE, labels=LABELS)
async def on_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """Every state the watch shows feeds /metrics (the monitor's status writes too). A user's change
    (spec, a request, a pause) and a new monitor run wake the object's daemon at once; the
    operator's own status writes do not (they would spin the loop)."""
    uid = body.metadata["uid"]
    key_by_name = (body.metadata.namespace or "", body.metadata.name or "")
    if type == "DELETED":
        metrics.forget(*key_by_name)
        _forget(uid, key_by_name)
        return
    metrics.observe(body)
    _uid_by_name[key_by_name] = uid
    _known.add(uid)
    model = (body.get("spec") or {}).get("model") or {}
    if isinstance(model.get("name"), str):
        _model_of[uid] = model["name"]
    annotations = body.metadata.annotations
    monitoring = (body.get("status") or {}).get("monitoring") or {}
    key = (
        body.metadata.get("generation"),
        annotations.get(names.ANNOTATION_REQUEST),
        annotations.get(names.ANNOTATION_PAUSED),
        monitoring.get("lastRun"),  # a new monitor verdict may start a retraining
        bool(body.metadata.get("deletionTimestamp")),
    )
    if _seen.get(uid) != key:
        _seen[uid] = key
        wake(uid, metric_names.WAKE_CHANGE)


async def on_child_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A child changed (a Deployment's ready replicas, a Job finishing, one deleted by hand): into
    the operator's copy (on the event loop: no thread hop per event), and wake its owner. Our own
    applies that change nothing the reconcile reads wake nobody."""
    child = body.metadata.get("uid") or ""
    kind = str(body.get("kind") or "")
    if type == "DELETED":
        _child_keys.pop(child, None)
        if CHILDREN is not None:
            CHILDREN.remove(kind, body)
    else:
        if CHILDREN is not None:
            CHILDREN.put(kind, body)
        key = children.change_key(body)
        if _child_keys.get(child) == key:
            return
        _child_keys[child] = key
    owners = set(children.owner_uids(body))
    by_label = children.owner_name(body)
    if by_label is not None and by_label in _uid_by_name:
        owners.add(_uid_by_name[by_label])
    for uid in owners:
        wake(uid, metric_names.WAKE_CHILD)


if SETTINGS.watch_children:
    for _child in children.WATCHED:
        kopf.on.event(_child.group, _child.version, _child.plural, labels=CHILD_LABELS)(on_child_event)


def on_model_event(event: ModelEvent) -> int:
    """An MLflow webhook: drop the model's cached resolutions and wake every ModelDeployment that
    serves it. Returns how many were woken. Called on the event loop (the health server's)."""
    if _world is not None and _world.resolutions is not None:
        _world.resolutions.invalidate(event.model_name)
    users = [uid for uid, model in _model_of.items() if model == event.model_name]
    for uid in users:
        wake(uid, metric_names.WAKE_WEBHOOK)
    return len(users)


@kopf.daemon(*RESOURCE, labels=LABELS, cancellation_timeout=5.0, initial_delay=0.0)
async def ticker(body: kopf.Body, logger: kopf.Logger, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Starts for every ModelDeployment Kopf sees (created, or found at start-up) and ticks at once."""

    async def tick(priority: Priority) -> tuple[float | None, int | None]:
        started: list[int] = []
        outcome = await _tick(body, logger, started, priority)
        return requeue_of(outcome, SETTINGS.watch_children), (started[0] if started else None)

    # At start-up every object ticks once; those changed since they were last reconciled go first.
    observed = (body.get("status") or {}).get("observedGeneration")
    first = Priority.CHANGE if observed != body.metadata.get("generation") else Priority.RESYNC
    await run_ticks(
        tick, _wakeups[body.metadata["uid"]], SETTINGS.resync_seconds, lambda: bool(stopped), first
    )


def requeue_of(outcome: Outcome | None, children_watched: bool) -> float | None:
    if outcome is None:  # a write conflict: decide again soon
        return 1.0
    requeue = outcome.requeue_after
    if children_watched and isinstance(requeue, ChildPoll):
        return max(float(requeue), CHILD_POLL_WHEN_WATCHED)
    return requeue


@kopf.on.delete(*RESOURCE, labels=LABELS)
async def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    outcome = await _tick(body, logger)
    if outcome is None or outcome.requeue_after is not None:
        delay = 1.0 if outcome is None or outcome.requeue_after is None else max(outcome.requeue_after, 1.0)
        raise kopf.TemporaryError("child objects are still being deleted", delay=delay)
    uid = body.metadata["uid"]
    metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
    _forget(uid, (body.metadata.namespace or "", body.metadata.name or ""))
    _locks.pop(uid, None)


def _forget(uid: str, key_by_name: tuple[str, str]) -> None:
    """Per-object state goes with the object: memory follows the objects that exist, not history."""
    _known.discard(uid)
    _wakeups.pop(uid, None)
    _fresh_at.pop(uid, None)
    _seen.pop(uid, None)
    _model_of.pop(uid, None)
    _failures.pop(uid, None)
    if _uid_by_name.get(key_by_name) == uid:
        del _uid_by_name[key_by_name]


def _api_message(error: client.ApiException) -> str:
    """The API server's own words (which verb on which resource was refused, or a namespace being
    terminated): without them a 403 in the log cannot be told from a missing RBAC rule."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or error.body or "").split())[:300]  # one log line, whatever the server sent


def _error_kind(e: Exception) -> str:
    if isinstance(e, ActionFailed):
        return metric_names.ERROR_ACTION_FAILED
    if isinstance(e, client.ApiException):
        return metric_names.ERROR_CONFLICT if e.status == 409 else metric_names.ERROR_API
    return metric_names.ERROR_UNEXPECTED


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A detached copy: Kopf's body may change under a thread while the tick runs."""
    return copy.deepcopy(dict(body))
