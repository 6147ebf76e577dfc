"""A fake cluster for the pure core: actions change Deployments at once (a new version of an existing
track is seen once as still rolling out, as a real Deployment is), weights are read back from ready
replicas, the registry records every alias move, Events are named after the status they were decided
from (as the executor names them). The rung below the real-cluster tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from mlrollout.api.jobs import JobRunning
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Weights
from mlrollout.api.training import TrainResult, train_job_name
from mlrollout.rollout import decide
from mlrollout.rollout.actions import (
    Action,
    ApplyPreviewService,
    ApplyService,
    ApplyServing,
    ApplyTrainJob,
    ConfigureMirror,
    DeletePreviewService,
    DeleteServing,
    DeleteTrackService,
    EmitEvent,
    MoveAlias,
    SetWeights,
    TagVersion,
)
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.decision import Decision
from mlrollout.rollout.experiment_observed import AbObservation, ShadowObservation
from mlrollout.rollout.observed import ManualRequest, Observed, ResolvedModel, TrackState
from mlrollout.rollout.weights import replica_split, served_weight


@dataclass
class FakeCluster:
    spec: ModelDeploymentSpec
    version: str  # what the alias resolves to
    now: datetime
    tracks: dict[str, TrackState] = field(default_factory=dict)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    alias_moves: list[str] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    samples: tuple[Sample, ...] = ()
    request: ManualRequest | None = None
    paused: bool = False
    decisions: list[Decision] = field(default_factory=list)
    selector: str | None = "stable"  # the live Service's track selector
    preview_service: bool = False
    switches: list[str | None] = field(default_factory=list)
    rolling: set[str] = field(default_factory=set)  # tracks whose new version is not observed rolled out yet
    event_names: set[str] = field(default_factory=set)
    query_problems: tuple[tuple[str, str], ...] = ()  # what Prometheus says of the queries it parsed
    name: str = ""  # the ModelDeployment's name
    # Training Jobs: each applied one finishes with the next of `train_outcomes` (none left: running).
    train_outcomes: list[TrainResult] = field(default_factory=list)
    train_jobs: dict[str, TrainResult] = field(default_factory=dict)
    trainings: list[ApplyTrainJob] = field(default_factory=list)
    follow_alias: bool = False  # the model ref names the alias the promotions move
    # Experiments: the stable pods' mirroring (written from each decision, as the executor does),
    # the shadow track's Service, and what Prometheus would answer (None: no data).
    mirror_percent: int = 0
    mirror_switches: list[int] = field(default_factory=list)
    shadow_service: bool = False
    shadow_numbers: ShadowObservation | None = None
    ab_counts: AbObservation | None = None

    def observed(self) -> Observed:
        tracks = dict(self.tracks)
        for track in self.rolling & set(tracks):
            tracks[track] = replace(tracks[track], updated_replicas=0, observed_generation=0)
        self.rolling.clear()
        stable = self.tracks.get("stable")
        canary = self.tracks.get("canary")
        weights = Weights()
        if canary is not None:
            share = served_weight(stable.available_replicas if stable else 0, canary.available_replicas)
            weights = Weights(stable=100 - share, canary=share)
        return Observed(
            generation=1,
            model=ResolvedModel(self.spec.model.name, self.version),
            tracks=tracks,
            service_present=True,
            paused=self.paused,
            request=self.request,
            samples=self.samples,
            weights=weights,
            active_track=self.selector,
            preview_service_present=self.preview_service,
            query_problems=self.query_problems,
            name=self.name,
            training=self._training(),
            shadow_service_present=self.shadow_service,
            shadow=replace(self.shadow_numbers, mirror_percent=self.mirror_percent)
            if self.shadow_numbers is not None
            else ShadowObservation(mirror_percent=self.mirror_percent),
            ab=self.ab_counts,
        )

    def _training(self) -> TrainResult | None:
        state = self.status.retraining
        return self.train_jobs.get(state.job) if state is not None and state.job else None

    def tick(self, apply: bool = True, write_status: bool = True) -> Decision:
        decision = decide(self.spec, self.status, self.observed(), self.now)
        self.decisions.append(decision)
        if apply:
            for action in decision.actions:
                self.act(action)
            mirrors = [a.percent for a in decision.actions if isinstance(a, ConfigureMirror)]
            stable_applied = any(
                isinstance(a, ApplyServing) and a.track == "stable" for a in decision.actions
            )
            if mirrors or stable_applied:  # the live ConfigMap follows the decision of every tick
                percent = mirrors[-1] if mirrors else 0
                if percent != self.mirror_percent:
                    self.mirror_switches.append(percent)
                self.mirror_percent = percent
        if write_status:
            self.status = decision.status
        return decision

    def act(self, action: Action) -> None:
        match action:
            case ApplyServing(track=track, version=version, replicas=replicas):
                self._deploy(track, version, self.spec.serving.replicas if replicas is None else replicas)
            case SetWeights():
                stable, canary = replica_split(self.spec.serving.replicas, action.canary_weight)
                if action.canary_replicas is not None:
                    canary = action.canary_replicas
                self._deploy("stable", action.stable_version, stable)
                self._deploy("canary", action.canary_version, canary)
            case ApplyService(selector_track=selector):
                if selector != self.selector:
                    self.switches.append(selector)
                self.selector = selector
            case ApplyPreviewService():
                self.preview_service = True
            case DeletePreviewService():
                self.preview_service = False
            case DeleteServing(track=track):
                self.tracks.pop(track, None)
            case ConfigureMirror(percent=percent):
                self.shadow_service = self.shadow_service or percent > 0
            case DeleteTrackService():
                self.shadow_service = False
            case MoveAlias(version=version):
                if not self.alias_moves or self.alias_moves[-1] != version:  # read first, as the executor
                    self.alias_moves.append(version)
                if self.follow_alias:
                    self.version = version
            case ApplyTrainJob(attempt=attempt):
                job = train_job_name(self.name, attempt)
                if job not in self.train_jobs:  # applying is idempotent
                    self.trainings.append(action)
                    outcome = self.train_outcomes.pop(0) if self.train_outcomes else None
                    self.train_jobs[job] = outcome or JobRunning(job=job)
            case TagVersion(version=version, tags=tags):
                self.tags.setdefault(version, {}).update(dict(tags))
            case EmitEvent(type=type_, reason=reason, message=message):
                # Acts come before the status write: self.status is the status this was decided from.
                name = json.dumps([self.status.model_dump(mode="json"), type_, reason, message])
                if name not in self.event_names:  # the API server refuses a second Event of one name
                    self.event_names.add(name)
                    self.events.append((type_, reason, message))
            case _:
                pass

    def _deploy(self, track: str, version: str, replicas: int) -> None:
        if track in self.tracks and self.tracks[track].version != version:
            self.rolling.add(track)
        self.tracks[track] = TrackState(
            version=version,
            desired_replicas=replicas,
            available_replicas=replicas,
            updated_replicas=replicas,
            generation=1,
            observed_generation=1,
        )

    def run(self, ticks: int, step: timedelta = timedelta(seconds=10)) -> None:
        for _ in range(ticks):
            self.tick()
            self.now += step

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]
