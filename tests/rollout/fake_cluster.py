"""A fake cluster for the pure core: carries out decide()'s actions on plain data, instantly.

It is the fast rung beside the real-cluster tests: Deployments become ready at once (or stay
unready when told), the registry keeps aliases and tags, and every action is recorded so tests can
count repeats and skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus
from mlrollout.rollout import decision
from mlrollout.rollout.actions import Action, ApplyServing, DeleteServing, EmitEvent, MoveAlias, TagVersion
from mlrollout.rollout.analysis import Sample
from mlrollout.rollout.observed import Observed, Request, ResolvedModel, TrackState


@dataclass
class FakeCluster:
    spec: ModelDeploymentSpec
    now: datetime
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    tracks: dict[str, TrackState] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_moves: list[tuple[str, str]] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    request: Request | None = None
    unready: set[str] = field(default_factory=set)  # tracks whose pods never become ready

    def tick(
        self, model: str, samples: dict[str, Sample] | None = None, advance: float = 1.0
    ) -> decision.Decision:
        """One reconcile: observe, decide, act, write status; then the clock moves on."""
        observed = Observed(
            generation=1,
            model=ResolvedModel(self.spec.model.name, model),
            tracks=dict(self.tracks),
            service_present=True,
            request=self.request,
            samples=samples or {},
        )
        d = decision.decide(self.spec, self.status, observed, self.now)
        self.act(d.actions)
        self.status = d.status
        self.now += timedelta(seconds=advance)
        return d

    def act(self, actions: tuple[Action, ...]) -> None:
        for a in actions:
            self.actions.append(a)
            match a:
                case ApplyServing(track=track, version=version, replicas=replicas):
                    n = self.spec.serving.replicas if replicas is None else replicas
                    ready = 0 if track in self.unready else n
                    self.tracks[track] = TrackState(version, n, ready, n, 1, 1)
                case DeleteServing(track=track):
                    self.tracks.pop(track, None)
                case MoveAlias(alias=alias, version=version):
                    if self.aliases.get(alias) != version:
                        self.alias_moves.append((alias, version))
                    self.aliases[alias] = version
                case TagVersion(version=version, tags=tags):
                    self.tags.setdefault(version, {}).update(dict(tags))

    def events(self) -> list[str]:
        return [a.reason for a in self.actions if isinstance(a, EmitEvent)]
