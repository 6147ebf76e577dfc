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

from mlrollout.adapters.k8s import builders, jobs, monitor, training
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.registry.cache import ResolutionCaches
from mlrollout.adapters.traffic.replica_ratio import ReplicaRatioRouter
from mlrollout.adapters.traffic.router import TrafficRouter
from mlrollout.adapters.traffic.routes import GatewayApiRouter, IstioRouter
from mlrollout.api import names
from mlrollout.api.serving import ModelRef
from mlrollout.api.spec import ModelDeploymentSpec, experiment_prometheus
from mlrollout.api.status import ModelDeploymentStatus, Phase
from mlrollout.api.training import TrainResult
from mlrollout.reconcile import observe
from mlrollout.rollout import backoff, experiment_queries, plan, requests
from mlrollout.rollout.actions import (
    ApplyGateJob,
    ApplyMonitor,
    ApplyPreviewService,
    ApplyService,
    ApplyServing,
    ApplyTrainJob,
    ConfigureMirror,
    DeleteJob,
    DeleteMonitor,
    DeletePreviewService,
    DeleteService,
    DeleteServing,
    DeleteTrackService,
    EmitEvent,
    MoveAlias,
    SetWeights,
    TagVersion,
)
from mlrollout.rollout.analysis import MetricQueries, Sample
from mlrollout.rollout.decision import Decision, decide, reject_spec, terminate
from mlrollout.rollout.experiment_observed import AbObservation, ShadowObservation
from mlrollout.rollout.gate import GateResult
from mlrollout.rollout.observed import Observed, RegistryProblem, ResolvedModel

log = logging.getLogger(__name__)

# Sections written by someone else (the monitor CronJob): never sent back from a stale read.
FOREIGN_STATUS = frozenset({"monitoring"})
# A route the operator cannot use yet (missing, not accepted by a Gateway) is looked at again this often.
ROUTE_RECHECK = 10.0


class Registry(Protocol):
    def resolve(self, ref: ModelRef) -> ResolvedModel | RegistryProblem: ...

    def set_alias(self, name: str, alias: str, version: str) -> RegistryProblem | None: ...

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> RegistryProblem | None: ...


class MetricsSource(Protocol):
    """prometheus-api-client behind the analysis helper's PrometheusProvider (synchronous)."""

    def sample(self, metric_name: str, queries: MetricQueries) -> Sample: ...

    def check(self, promql: str) -> str | None: ...

    def query(self, promql: str) -> float | None:
        """One number (None: no data); raises on a failed query or an unreachable server."""


class ActionFailed(RuntimeError):
    """An action could not be carried out: status is not written, so the next tick decides again."""


@dataclass
class World:
    executor: KubeExecutor
    registry: Callable[[str], Registry]
    metrics: Callable[[str], MetricsSource] | None = None
    job_service_account: str = monitor.DEFAULT_SERVICE_ACCOUNT  # the chart's Jobs' ServiceAccount
    # Shared alias resolutions per tracking URI (None: ask the registry on every tick).
    resolutions: ResolutionCaches | None = None

    def router(self, spec: ModelDeploymentSpec | None) -> TrafficRouter:
        traffic = spec.traffic if spec is not None else None
        if traffic is not None and traffic.gateway_api is not None:
            return GatewayApiRouter(self.executor)
        if traffic is not None and traffic.istio is not None:
            return IstioRouter(self.executor)
        return ReplicaRatioRouter(self.executor)


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
        _restore_route(body, owner, world)
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
    problem = world.router(spec).ensure(owner, spec)
    if problem is not None:
        decision = reject_spec(status, generation, problem, now, reason="TrafficRouteProblem")
        _act(decision, owner, None, world, body, now)
        return Outcome(decision.phase, ROUTE_RECHECK, acted=True)
    model = _resolve(world, spec, fresh=generation != status.observed_generation)
    observed = _observe_children(body, owner, spec, status, world, model)
    samples = _sample(spec, status, owner, world, now)
    problems = _check_queries(spec, status, model, owner, world)
    shadow, ab = _observe_experiment(spec, status, owner, world, now)
    observed = replace(observed, samples=samples, query_problems=problems, shadow=shadow, ab=ab)
    decision = decide(spec, status, observed, now)
    _act(decision, owner, spec, world, body, now)
    return Outcome(decision.phase, decision.requeue_after, acted=True)


def _resolve(world: World, spec: ModelDeploymentSpec, fresh: bool) -> ResolvedModel | RegistryProblem:
    """A changed spec is always resolved afresh; otherwise the shared cache answers until it expires
    or a webhook drops the model."""
    registry = world.registry(spec.registry.tracking_uri)
    if world.resolutions is None:
        return registry.resolve(spec.model)
    return world.resolutions.for_uri(spec.registry.tracking_uri).resolve(spec.model, registry.resolve, fresh)


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
        pinned[names.TRACK_PREVIEW] = (candidate.model_name, candidate.version)
        pinned[names.TRACK_SHADOW] = (candidate.model_name, candidate.version)
    meta = body["metadata"]
    annotations = meta.get("annotations") or {}
    deployments = world.executor.list_deployments(owner)
    hpa_tracks = hpa_scaled_tracks(owner, world.executor.hpa_targets(owner.namespace))
    service = world.executor.read_service(owner)
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    preview = world.executor.read_service(owner, names.preview_service_name(owner.name))
    shadow_service = _shadow_service_present(owner, spec, status, world)
    return Observed(
        generation=int(meta.get("generation", 1)),
        model=model,
        tracks=observe.tracks(deployments, owner, spec, pinned, hpa_tracks),
        service_present=service is not None,
        active_track=selector.get(names.LABEL_TRACK),
        preview_service_present=preview is not None,
        shadow_service_present=shadow_service,
        paused=annotations.get(names.ANNOTATION_PAUSED, "").lower() == "true",
        deleting=bool(meta.get("deletionTimestamp")),
        request=requests.parse(annotations.get(names.ANNOTATION_REQUEST)),
        weights=world.router(spec).get_weights(owner, spec, deployments),
        hpa_tracks=hpa_tracks,
        name=owner.name,
        gate=_observe_gate(owner, status, world),
        monitor_present=world.executor.monitor_present(owner, monitor.monitor_name(owner)),
        training=_observe_training(owner, status, world),
        created_at=_created_at(meta),
    )


def _restore_route(body: Mapping[str, Any], owner: Owner, world: World) -> None:
    """Give the user's route back as they wrote it (a spec that no longer parses names no route)."""
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return
    world.router(spec).restore(owner, spec)


def _shadow_service_present(
    owner: Owner, spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, world: World
) -> bool:
    """Read only where a shadow may have made it (one GET less per tick for everyone else)."""
    rollout = status.rollout
    if (spec is None or spec.strategy.shadow is None) and (rollout is None or rollout.shadow is None):
        return False
    name = names.track_service_name(owner.name, names.TRACK_SHADOW)
    return world.executor.read_service(owner, name) is not None


def _observe_experiment(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, world: World, now: datetime
) -> tuple[ShadowObservation | None, AbObservation | None]:
    """A running shadow's or A/B test's numbers from Prometheus; a failed query is no data (the
    experiment pauses on it, never decides)."""
    due = experiment_queries.plan(spec, status, owner.namespace, now)
    address = experiment_prometheus(spec)
    if due is None or address is None or world.metrics is None:
        return None, None
    source = world.metrics(address)
    try:
        if isinstance(due, experiment_queries.ShadowQueries):
            return experiment_queries.shadow_observation(due, source.query), None
        return None, experiment_queries.ab_observation(due, source.query)
    except Exception as e:  # the provider's QueryError, or anything unexpected: no data this tick
        log.warning("%s/%s: experiment metrics unavailable: %s", owner.namespace, owner.name, e)
        return None, None


def hpa_scaled_tracks(owner: Owner, hpa_targets: frozenset[str]) -> frozenset[str]:
    return frozenset(t for t in names.TRACKS if names.serving_name(owner.name, t) in hpa_targets)


def _observe_gate(owner: Owner, status: ModelDeploymentStatus, world: World) -> GateResult | None:
    """The running gate's Job and its pods, parsed (None: no gate running, or its Job is gone)."""
    gate = status.rollout.gate if status.rollout else None
    if gate is None or gate.phase != "Running":
        return None
    job = world.executor.read_job(owner.namespace, gate.job)
    if job is None:
        return None
    return jobs.read_gate_result(job, world.executor.list_job_pods(job))


def _observe_training(owner: Owner, status: ModelDeploymentStatus, world: World) -> TrainResult | None:
    """The running training Job and its pods, parsed (None: no training running, or its Job is gone)."""
    state = status.retraining
    if state is None or state.state != "Training" or state.job is None:
        return None
    job = world.executor.read_job(owner.namespace, state.job)
    if job is None:
        return None
    return training.read_train_result(job, world.executor.list_job_pods(job))


def _created_at(meta: Mapping[str, Any]) -> datetime | None:
    raw = meta.get("creationTimestamp")
    if not isinstance(raw, str):
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _sample(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, world: World, now: datetime
) -> tuple[Sample, ...]:
    """The analysis queries that are due, taken now (an absent provider is an error sample: it pauses)."""
    due = plan.analysis_queries(spec, status, owner.namespace, owner.name, now)
    if not due or spec.analysis is None:
        return ()
    if world.metrics is None:
        return tuple(Sample(m.name, None, None, error="no metrics provider configured") for m, _ in due)
    source = world.metrics(spec.analysis.prometheus.address)
    return tuple(source.sample(metric.name, queries) for metric, queries in due)


def _check_queries(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    model: ResolvedModel | RegistryProblem,
    owner: Owner,
    world: World,
) -> tuple[tuple[str, str], ...]:
    """Prometheus parses a new candidate's queries before its first traffic (unreachable: no verdict)."""
    if not isinstance(model, ResolvedModel) or world.metrics is None or spec.analysis is None:
        return ()
    due = plan.queries_to_check(spec, status, model.version, model.name, owner.namespace, owner.name)
    if not due:
        return ()
    source = world.metrics(spec.analysis.prometheus.address)
    return tuple((metric, error) for metric, promql in due if (error := source.check(promql)) is not None)


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
    rollout = decision.status.rollout
    if spec is not None and (rollout is None or rollout.candidate is None):
        # No candidate any more: a route goes back to the live Service before the candidate goes.
        world.router(spec).finalize(owner, spec)
    # The stable pods' live config follows every decision: mirroring on only while one asks for it.
    mirror = next((a for a in decision.actions if isinstance(a, ConfigureMirror)), None)
    for action in decision.actions:
        match action:
            case ApplyServing(track=track, model_name=model_name, version=version, replicas=replicas):
                assert spec is not None
                if track == names.TRACK_STABLE:  # the pods mount it: it exists before they start
                    world.executor.apply(_live_config(owner, mirror))
                manifest = builders.serving_deployment(owner, spec, track, model_name, version, replicas)
                world.executor.apply(manifest)
            case ConfigureMirror(percent=percent, target_track=target):
                assert spec is not None
                if percent > 0:  # the target's Service first: mirrored calls must find it
                    world.executor.apply(builders.track_service(owner, spec, target))
                world.executor.apply(_live_config(owner, action))
            case DeleteTrackService(track=track):
                world.executor.delete_service(owner.namespace, names.track_service_name(owner.name, track))
            case ApplyService(selector_track=selector_track):
                assert spec is not None
                world.executor.apply(builders.service(owner, spec, selector_track))
            case ApplyPreviewService():
                assert spec is not None
                world.executor.apply(builders.preview_service(owner, spec))
            case DeletePreviewService():
                world.executor.delete_service(owner.namespace, names.preview_service_name(owner.name))
            case SetWeights():
                assert spec is not None
                world.router(spec).set_weights(owner, spec, action)
            case MoveAlias(model_name=model_name, alias=alias, version=version):
                assert spec is not None
                _move_alias(world.registry(spec.registry.tracking_uri), model_name, alias, version)
                if world.resolutions is not None:
                    world.resolutions.invalidate(model_name)
            case TagVersion(model_name=model_name, version=version, tags=tags):
                assert spec is not None
                problem = world.registry(spec.registry.tracking_uri).tag_version(
                    model_name, version, dict(tags)
                )
                if problem is not None:
                    raise ActionFailed(f"tagging {model_name} version {version}: {problem.message}")
            case ApplyGateJob(version=version, attempt=attempt):
                assert spec is not None
                rollout = decision.status.rollout
                model_name = (
                    rollout.candidate.model_name if rollout and rollout.candidate else spec.model.name
                )
                # The runtime image serves models and runs the Jobs (gate, monitor, train).
                manifest = jobs.gate_job(owner, spec, model_name, version, attempt, spec.serving.image)
                world.executor.apply(manifest)
            case ApplyTrainJob():
                assert spec is not None
                # The built-in trainer runs in the runtime image unless retraining.job.image is set.
                manifest = training.train_job(
                    owner,
                    spec,
                    action.model_name,
                    action.parent_version,
                    action.trigger,
                    action.attempt,
                    spec.serving.image,
                    world.job_service_account,
                )
                world.executor.apply(manifest)
            case DeleteJob(name=name):
                world.executor.delete_job(owner.namespace, name)
            case DeleteServing(track=track):
                world.executor.delete_deployment(owner.namespace, names.serving_name(owner.name, track))
            case DeleteService():
                world.executor.delete_service(owner.namespace, names.service_name(owner.name))
            case ApplyMonitor(model_name=model_name, version=version):
                assert spec is not None
                # the ConfigMap first: a Job the CronJob starts at once must find its config
                world.executor.apply(monitor.monitor_config_map(owner, spec, model_name, version))
                world.executor.apply(
                    monitor.monitor_cronjob(
                        owner, spec, model_name, version, spec.serving.image, world.job_service_account
                    )
                )
            case DeleteMonitor():
                world.executor.delete_monitor(owner.namespace, monitor.monitor_name(owner))
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


def _live_config(owner: Owner, mirror: ConfigureMirror | None) -> builders.Manifest:
    if mirror is None or mirror.percent <= 0:
        return builders.live_config_map(owner, None)
    url = builders.track_service_url(owner, mirror.target_track)
    return builders.live_config_map(owner, (url, mirror.percent, mirror.relative_tolerance))


def _move_alias(registry: Registry, model_name: str, alias: str, version: str) -> None:
    """Read first: a replayed tick finds the alias already there and moves nothing."""
    current = registry.resolve(ModelRef(name=model_name, alias=alias))
    if isinstance(current, ResolvedModel) and current.version == version:
        return
    problem = registry.set_alias(model_name, alias, version)
    if problem is not None:
        raise ActionFailed(f"moving alias {alias} of {model_name} to {version}: {problem.message}")


def event_name(owner: Owner, decided_from: Mapping[str, Any], event: EmitEvent) -> str:
    """Deterministic for (object, status it was decided from, event): a replayed tick posts the same name."""
    basis = json.dumps([owner.uid, decided_from, event.type, event.reason, event.message], sort_keys=True)
    return f"{owner.name[:200]}.{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def status_patch(raw: Mapping[str, Any], status: ModelDeploymentStatus) -> dict[str, Any]:
    """The merge patch taking `raw` to `status` on the operator's own fields; empty when nothing changed.

    Nested objects are diffed too: a merge patch keeps keys it does not mention, so a key gone from
    a nested object (a finished rollout's candidate) must be sent as null.
    """
    new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    mine = {k: v for k, v in raw.items() if k not in FOREIGN_STATUS}
    return _merge_diff(mine, {k: v for k, v in new.items() if k not in FOREIGN_STATUS})


def _merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = _merge_diff(before, value)
        else:
            patch[key] = value
    patch |= {k: None for k in old if k not in new}
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
