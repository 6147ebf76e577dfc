"""Routers that split requests in the data plane: a user-owned Gateway API HTTPRoute or Istio
VirtualService, edited in place (read, render the operator's entries, replace with the read's
resourceVersion: a concurrent edit by the user makes the write fail and the next tick redo it).

The weight counts only once read back from the route; for an HTTPRoute also only once a Gateway
reports the current generation Accepted (and its refs resolved). Both dialects are pure functions
(httproute.py, istio.py); this module does the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.executor import KubeExecutor
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.adapters.traffic import httproute, istio, replica_ratio
from mlrollout.adapters.traffic import routing as r
from mlrollout.api import names
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import Weights
from mlrollout.rollout.actions import SetWeights
from mlrollout.rollout.weights import routed_split

log = logging.getLogger(__name__)


def desired_manifests(
    owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights
) -> list[builders.Manifest]:
    """Both tracks at the size their share needs (stable keeps its full size), and their Services."""
    deployments = replica_ratio.desired_manifests(owner, spec, weights, routed_split)
    return [*deployments, *track_services(owner, spec)]


def track_services(owner: Owner, spec: ModelDeploymentSpec) -> list[builders.Manifest]:
    return [r.track_service(owner, spec, track) for track in (names.TRACK_STABLE, names.TRACK_CANARY)]


# kind -> (group, plural), v1 both; one table so the chart's rights test reads them from here.
ROUTE_RESOURCES = {
    "HTTPRoute": ("gateway.networking.k8s.io", "httproutes"),
    "VirtualService": ("networking.istio.io", "virtualservices"),
}


@dataclass
class _RouteRouter:
    executor: KubeExecutor
    _kind: ClassVar[str] = ""
    _chart_value: ClassVar[str] = ""

    @property
    def _objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.executor.api)

    def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        group, plural = ROUTE_RESOURCES[self._kind]
        try:
            found: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                group, "v1", namespace, plural, name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return found

    def _replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        group, plural = ROUTE_RESOURCES[self._kind]
        self._objects.replace_namespaced_custom_object(group, "v1", namespace, plural, name, dict(body))

    # The dialect: what each subclass knows of its object.
    def _name(self, spec: ModelDeploymentSpec) -> str:
        raise NotImplementedError

    def _problem(self, obj: Mapping[str, Any] | None, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        raise NotImplementedError

    def _render(
        self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec, want: r.Routing
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _restored(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
        raise NotImplementedError

    def _weights(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> Weights | None:
        raise NotImplementedError

    # The TrafficRouter protocol.
    def ensure(self, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        """The track Services exist; the route is there, ours to edit (else: the problem, nothing moved)."""
        try:
            found = self._read(owner.namespace, self._name(spec))
        except ApiException as e:
            if e.status != 403:
                raise
            where = f"{self._kind} {owner.namespace}/{self._name(spec)}"
            return f"{where}: the operator may not read it ({self._chart_value} in the chart grants it)"
        problem = self._problem(found, owner, spec)
        if problem is None:
            for manifest in track_services(owner, spec):
                self.executor.apply(manifest)
        return problem

    def set_weights(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> None:
        for manifest in desired_manifests(owner, spec, weights):
            self.executor.apply(manifest)
        self.route(owner, spec, r.routing_for(spec, weights.canary_weight))

    def get_weights(
        self, owner: Owner, spec: ModelDeploymentSpec | None, deployments: Sequence[Mapping[str, Any]]
    ) -> Weights | None:
        if spec is None:
            return None
        found = self._read(owner.namespace, self._name(spec))
        return None if found is None else self._weights(found, owner, spec)

    def verify(self, owner: Owner, spec: ModelDeploymentSpec, weights: SetWeights) -> bool:
        found = self.get_weights(owner, spec, ())
        return found is not None and found.canary == weights.canary_weight

    def finalize(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """No candidate: the user's rule back on the main Service (which follows the serving track)."""
        self.route(owner, spec, r.Routing(canary_weight=None))

    # Beyond the protocol.
    def route(self, owner: Owner, spec: ModelDeploymentSpec, want: r.Routing) -> bool:
        """Write the operator's entries for `want` (False: the route has a problem, nothing written)."""
        found = self._read(owner.namespace, self._name(spec))
        if found is None or self._problem(found, owner, spec) is not None:
            return False
        rendered = self._render(found, owner, spec, want)
        if rendered != found:
            self._replace(owner.namespace, self._name(spec), rendered)
        return True

    def restore(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """On delete: the route as the user wrote it (a route gone or someone else's is left alone)."""
        try:
            found = self._read(owner.namespace, self._name(spec))
        except ApiException as e:
            if e.status != 403:
                raise
            # Never hang a delete on rights the chart was not given: the route simply stays as is.
            log.warning("%s %s/%s not restored: forbidden", self._kind, owner.namespace, self._name(spec))
            return
        if found is None:
            return
        if r.manager(found) != owner.name:
            return
        self._replace(owner.namespace, self._name(spec), self._restored(found, owner, spec))


class GatewayApiRouter(_RouteRouter):
    _kind, _chart_value = "HTTPRoute", "rbac.gatewayAPI=true"

    def _name(self, spec: ModelDeploymentSpec) -> str:
        assert spec.traffic is not None and spec.traffic.gateway_api is not None
        return spec.traffic.gateway_api.http_route

    def _problem(self, obj: Mapping[str, Any] | None, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        return httproute.problem(obj, owner, self._name(spec))

    def _render(
        self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec, want: r.Routing
    ) -> dict[str, Any]:
        return httproute.render(obj, owner, want)

    def _restored(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
        return httproute.restored(obj, owner)

    def _weights(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> Weights | None:
        # A weight the Gateway has not accepted yet moves no traffic.
        return httproute.read_weights(obj, owner) if httproute.accepted(obj) else None


class IstioRouter(_RouteRouter):
    _kind, _chart_value = "VirtualService", "rbac.istio=true"

    def _name(self, spec: ModelDeploymentSpec) -> str:
        assert spec.traffic is not None and spec.traffic.istio is not None
        return spec.traffic.istio.virtual_service

    def _route_name(self, spec: ModelDeploymentSpec) -> str | None:
        assert spec.traffic is not None and spec.traffic.istio is not None
        return spec.traffic.istio.route_name

    def _problem(self, obj: Mapping[str, Any] | None, owner: Owner, spec: ModelDeploymentSpec) -> str | None:
        return istio.problem(obj, owner, self._name(spec), self._route_name(spec))

    def _render(
        self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec, want: r.Routing
    ) -> dict[str, Any]:
        return istio.render(obj, owner, want, self._route_name(spec))

    def _restored(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
        return istio.restored(obj, owner, self._route_name(spec))

    def _weights(self, obj: Mapping[str, Any], owner: Owner, spec: ModelDeploymentSpec) -> Weights | None:
        return istio.read_weights(obj, owner, self._route_name(spec))
