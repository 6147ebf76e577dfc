"""observe -> decide -> act. All state is read from and written to the object's status."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.serving import ModelRef
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase
from mlrollout.reconcile import observe
from mlrollout.rollout import analysis, backoff, canary
from mlrollout.rollout.actions import (
    ApplyService,
    ApplyServing,
    DeleteService,
    DeleteServing,
    EmitEvent,
    MoveAlias,
    TagVersion,
)
from mlrollout.rollout.analysis import MetricQueries, Sample
from mlrollout.rollout.decision import Decision, decide, reject_spec, terminate
from mlrollout.rollout.observed import Observed, RegistryProblem, Request, ResolvedModel

log = logging.getLogger(__name__)

# Sections written by someone else (the monitor CronJob): never sent back from a stale read.
FOREIGN_STATUS = frozenset({"monitoring"})


class Registry(Protocol):
    def resolve(self, ref: ModelRef) -> ResolvedModel | RegistryProblem: ...

    def set_alias(self, name: str, alias: str, version: str) -> RegistryProblem | None: ...

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> RegistryProblem | None: ...


class Metrics(Protocol):
    def sample(self, metric: str, queries: MetricQueries) -> Sample: ...


class ActionFailed(RuntimeError):
    """An action could not be carried out (e.g. the registry refused an alias move): the tick stops
    before status is written, so the next tick decides and acts again."""


@dataclass
class World:
    executor: KubeExecutor
    registry: Callable[[str], Registry]
    metrics: Callable[[str], Metrics] | None = None


@dataclass(frozen=True)
class Outcome:
    phase: Phase
    requeue_after: float | None
    acted: bool


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def reconcile(seen: Mapping[str, Any], world: World, now: datetime | None = None) -> Outcome:
    """One tick for the object `seen` names; it is read afresh, since the caller's copy may be stale.

    On delete (deletionTimestamp set) the same tick removes the children; the outcome asks for a
    requeue until none is left, then the finalizer may go.
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    body = world.executor.read(seen["metadata"]["namespace"], seen["metadata"]["name"])
    if body is None or body["metadata"]["uid"] != seen["metadata"]["uid"]:
        return Outcome(Phase.TERMINATING, None, acted=False)
    owner = owner_of(body)
    generation = int(body["metadata"].get("generation", 1))
    status = _status(body.get("status") or {})
    if body["metadata"].get("deletionTimestamp"):
        # Deletion needs neither a valid spec nor the registry: it must never hang on either.
        decision = terminate(status, _observe_children(body, owner, None, status, world, None), now)
        _act(decision, owner, None, world, body, now)
        return Outcome(decision.phase, decision.requeue_after, acted=True)
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError as e:
        decision = reject_spec(status, generation, _first_error(e), now)
        _act(decision, owner, None, world, body, now)
        return Outcome(decision.phase, None, acted=True)
    wait = backoff.wait_remaining(status, generation, now)
    if wait is not None:
        return Outcome(status.phase, wait, acted=False)
    model = world.registry(spec.registry.tracking_uri).resolve(spec.model)
    observed = _observe_children(body, owner, spec, status, world, model)
    samples = _measure(spec, status, owner, world, now)
    if samples:
        observed = replace(observed, samples=samples)
    decision = decide(spec, status, observed, now)
    _act(decision, owner, spec, world, body, now)
    return Outcome(decision.phase, decision.requeue_after, acted=True)


def _observe_children(
    body: Mapping[str, Any],
    owner: Owner,
    spec: ModelDeploymentSpec | None,
    status: ModelDeploymentStatus,
    world: World,
    model: ResolvedModel | RegistryProblem | None,
) -> Observed:
    pinned: dict[str, tuple[str, str]] = {}
    if status.stable_version and status.model_name:
        pinned[names.TRACK_STABLE] = (status.model_name, status.stable_version)
    elif isinstance(model, ResolvedModel):
        pinned[names.TRACK_STABLE] = (model.name, model.version)
    candidate = status.rollout.candidate if status.rollout else None
    if candidate is not None:
        pinned[names.TRACK_CANARY] = (candidate.model_name, candidate.version)
    meta = body["metadata"]
    annotations = meta.get("annotations") or {}
    return Observed(
        generation=int(meta.get("generation", 1)),
        model=model,
        tracks=observe.tracks(world.executor.list_deployments(owner), owner, spec, pinned),
        service_present=world.executor.service_exists(owner),
        paused=annotations.get(names.ANNOTATION_PAUSED, "").lower() == "true",
        deleting=bool(meta.get("deletionTimestamp")),
        request=parse_request(annotations.get(names.ANNOTATION_REQUEST)),
    )


def parse_request(raw: str | None) -> Request | None:
    """The mlrollout.io/request annotation; an unreadable one is a request to refuse, not an error."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
            raise ValueError("no id")
        version = doc.get("version")
        return Request(
            id=doc["id"][:128], action=str(doc.get("action")), version=str(version) if version else None
        )
    except ValueError:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        return Request(id=f"invalid-{digest}", action="invalid (not JSON with an id)")


def _measure(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, world: World, now: datetime
) -> dict[str, Sample]:
    """Query the metrics of an analysis step when a measurement is due (and only then)."""
    due = canary.analysis_due(spec, status, now)
    if not due or world.metrics is None or spec.analysis is None:
        return {}
    provider = world.metrics(spec.analysis.prometheus.address)
    ctx = canary.query_context(spec, status, owner.namespace, owner.name)
    return {m.name: provider.sample(m.name, analysis.queries(m, ctx)) for m in due}


def _act(
    decision: Decision,
    owner: Owner,
    spec: ModelDeploymentSpec | None,
    world: World,
    body: Mapping[str, Any],
    now: datetime,
) -> None:
    """Children, then Events, then status: a crash anywhere repeats the tick from the same status.

    Events are named after the status they were decided from, so a repeated tick re-posts the same
    names and the API server refuses the duplicates; none is lost once the status has moved on.
    """
    events: list[EmitEvent] = []
    for action in decision.actions:
        match action:
            case ApplyServing(track=track, model_name=model_name, version=version, replicas=replicas):
                assert spec is not None
                manifest = builders.serving_deployment(owner, spec, track, model_name, version, replicas)
                world.executor.apply_if_changed(manifest)
            case MoveAlias(model_name=model_name, alias=alias, version=version):
                assert spec is not None
                _registry_call(
                    world.registry(spec.registry.tracking_uri).set_alias(model_name, alias, version)
                )
            case TagVersion(model_name=model_name, version=version, tags=tags):
                assert spec is not None
                registry = world.registry(spec.registry.tracking_uri)
                _registry_call(registry.tag_version(model_name, version, dict(tags)))
            case ApplyService():
                assert spec is not None
                world.executor.apply_if_changed(builders.service(owner, spec))
            case DeleteServing(track=track):
                world.executor.delete_deployment(owner.namespace, names.serving_name(owner.name, track))
            case DeleteService():
                world.executor.delete_service(owner.namespace, names.service_name(owner.name))
            case EmitEvent():
                events.append(action)
    raw_status = body.get("status") or {}
    for event in events:
        log.info("%s/%s %s: %s", owner.namespace, owner.name, event.reason, event.message)
        name = event_name(owner, raw_status, event)
        world.executor.emit_event(owner, name, event.type, event.reason, event.message, _micro(now))
    patch = status_patch(raw_status, decision.status)
    if patch:
        world.executor.patch_status(owner, patch, body["metadata"].get("resourceVersion"))


def _registry_call(problem: RegistryProblem | None) -> None:
    if problem is not None:
        raise ActionFailed(f"{problem.reason}: {problem.message}")


def event_name(owner: Owner, decided_from: Mapping[str, Any], event: EmitEvent) -> str:
    """Deterministic for (object, status it was decided from, event): a replayed tick posts the same name."""
    basis = json.dumps([owner.uid, decided_from, event.type, event.reason, event.message], sort_keys=True)
    return f"{owner.name[:200]}.{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def status_patch(raw: Mapping[str, Any], status: ModelDeploymentStatus) -> dict[str, Any]:
    """The merge patch taking `raw` to `status` on the operator's own fields; empty when nothing changed."""
    new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    patch: dict[str, Any] = {k: v for k, v in new.items() if k not in FOREIGN_STATUS and raw.get(k) != v}
    patch |= {k: None for k in raw if k not in new and k not in FOREIGN_STATUS}
    return patch


def _status(raw: Mapping[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        # A status we cannot read (hand-edited) is not fatal: what matters is re-derived from the world.
        log.warning("unreadable status, starting from observation: %s", dict(raw))
        pinned = {k: raw[k] for k in ("stableVersion", "modelName") if isinstance(raw.get(k), str)}
        return ModelDeploymentStatus.model_validate(pinned)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"spec.{where}: {first['msg']}" if where else str(first["msg"])


def _micro(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
