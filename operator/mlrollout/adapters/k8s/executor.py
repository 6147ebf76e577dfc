"""The one place that writes to the API server: server-side apply, deletes, Events, status patches.

Every call is idempotent: applying the same manifest twice changes nothing, deleting what is gone
is fine, so a tick interrupted anywhere can simply run again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
log = logging.getLogger(__name__)

# Grouped kinds go through the generic custom-objects endpoints (they return plain dicts).
_GROUPED = {
    "Deployment": ("apps", "v1", "deployments"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
}


@dataclass
class KubeExecutor:
    api: client.ApiClient
    instance: str = "mlrollout-operator"
    # Spec-hash annotations of children as last read: an apply with the same hash is skipped, so an
    # unchanged tick writes nothing (and never fights an HPA or anyone else over fields).
    _hashes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Deployments an HPA scales, per namespace, as last read: their replicas are never applied.
    _hpa_targets: dict[str, frozenset[str]] = field(default_factory=dict)
    writes: int = 0

    def _remember(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind") or ""), str(meta.get("namespace")), str(meta.get("name")))
        found = (meta.get("annotations") or {}).get(names.ANNOTATION_SPEC_HASH)
        if found:
            self._hashes[key] = str(found)
        else:
            self._hashes.pop(key, None)

    @property
    def _objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def hpa_targets(self, namespace: str) -> frozenset[str]:
        """Names of the Deployments a HorizontalPodAutoscaler in `namespace` targets (read now)."""
        found: dict[str, Any] = self._objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "autoscaling", "v2", namespace, "horizontalpodautoscalers"
        )
        targets = frozenset(
            str(ref.get("name"))
            for hpa in found.get("items", [])
            for ref in [(hpa.get("spec") or {}).get("scaleTargetRef") or {}]
            if ref.get("kind") == "Deployment" and str(ref.get("apiVersion", "apps/v1")).startswith("apps/")
        )
        self._hpa_targets[namespace] = targets
        return targets

    def apply(self, manifest: builders.Manifest) -> None:
        kind = manifest["kind"]
        if kind == "Deployment" and manifest["metadata"]["name"] in self._hpa_targets.get(
            manifest["metadata"]["namespace"], frozenset()
        ):
            manifest = builders.without_replicas(manifest)
        meta = manifest["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        wanted = meta.get("annotations", {}).get(names.ANNOTATION_SPEC_HASH)
        if wanted and self._hashes.get(key) == wanted:
            return
        self.writes += 1
        self._hashes.pop(key, None)
        common: dict[str, Any] = {"field_manager": names.FIELD_MANAGER, "force": True, "_content_type": APPLY}
        # Direct calls, one per kind: the chart's least-privilege test derives rights from them.
        if kind == "Service":
            self._core.patch_namespaced_service(meta["name"], meta["namespace"], manifest, **common)
        elif kind == "ConfigMap":
            self._core.patch_namespaced_config_map(meta["name"], meta["namespace"], manifest, **common)
        else:
            group, version, plural = _GROUPED[kind]
            self._objects.patch_namespaced_custom_object(
                group, version, meta["namespace"], plural, meta["name"], manifest, **common
            )
        if wanted:
            self._hashes[key] = wanted

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._hashes.pop(("Deployment", namespace, name), None)
        _ignore_missing(
            lambda: self._objects.delete_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", name, propagation_policy="Background"
            )
        )

    def list_deployments(self, owner: Owner) -> list[dict[str, Any]]:
        found: dict[str, Any] = self._objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "apps", "v1", owner.namespace, "deployments", label_selector=_selector(owner)
        )
        items = [d | {"kind": "Deployment"} for d in found.get("items", []) if _owned_by(d, owner)]
        # A snapshot of the keys: reconciles of other objects run in other threads and add theirs.
        for key in [k for k in list(self._hashes) if k[0] == "Deployment" and k[1] == owner.namespace]:
            self._hashes.pop(key, None)  # a Deployment gone since the last read must be created again
        for item in items:
            self._remember(item)
        return items

    def service_exists(self, owner: Owner) -> bool:
        return self.read_service(owner) is not None

    def read_service(self, owner: Owner, name: str | None = None) -> dict[str, Any] | None:
        name = name or names.service_name(owner.name)
        self._hashes.pop(("Service", owner.namespace, name), None)
        try:
            found = self._core.read_namespaced_service(name, owner.namespace)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        body: dict[str, Any] = self.api.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
        body["kind"] = "Service"
        self._remember(body)
        return body

    def delete_service(self, namespace: str, name: str) -> None:
        self._hashes.pop(("Service", namespace, name), None)
        _ignore_missing(lambda: self._core.delete_namespaced_service(name, namespace))

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job as it is now (None: gone, so an apply creates it again)."""
        self._hashes.pop(("Job", namespace, name), None)
        try:
            found: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                "batch", "v1", namespace, "jobs", name
            )
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        found["kind"] = "Job"
        self._remember(found)
        return found

    def list_job_pods(self, job: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pods of this Job object only (its controller-uid selector): never those of an older
        Job that had the same name."""
        namespace = str(job["metadata"]["namespace"])
        match = ((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not match:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        found = self._core.list_namespaced_pod(namespace, label_selector=selector)
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(found.items)  # type: ignore[no-untyped-call]
        return items

    def delete_job(self, namespace: str, name: str) -> None:
        """Background propagation: its pods go too (a running gate is stopped)."""
        self._hashes.pop(("Job", namespace, name), None)
        _ignore_missing(
            lambda: self._objects.delete_namespaced_custom_object(
                "batch", "v1", namespace, "jobs", name, propagation_policy="Background"
            )
        )

    def monitor_present(self, owner: Owner, name: str) -> bool:
        """Whether the monitor's CronJob or ConfigMap (both named `name`) exists; their hashes are
        remembered, so an unchanged apply is skipped and a deleted one is made again."""
        present = False
        for kind in ("CronJob", "ConfigMap"):
            self._hashes.pop((kind, owner.namespace, name), None)
            try:
                if kind == "CronJob":
                    body: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                        "batch", "v1", owner.namespace, "cronjobs", name
                    )
                else:
                    found = self._core.read_namespaced_config_map(name, owner.namespace)
                    body = self.api.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
            except client.ApiException as e:
                if e.status == 404:
                    continue
                raise
            present = True
            self._remember(body | {"kind": kind})
        return present

    def delete_monitor(self, namespace: str, name: str) -> None:
        """The CronJob (its Jobs and pods follow in the background) and its ConfigMap."""
        self._hashes.pop(("CronJob", namespace, name), None)
        self._hashes.pop(("ConfigMap", namespace, name), None)
        _ignore_missing(
            lambda: self._objects.delete_namespaced_custom_object(
                "batch", "v1", namespace, "cronjobs", name, propagation_policy="Background"
            )
        )
        _ignore_missing(lambda: self._core.delete_namespaced_config_map(name, namespace))

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelDeployment as the API server has it now (None once it is gone)."""
        try:
            found: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                names.GROUP, names.VERSION, namespace, names.PLURAL, name
            )
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return found

    def emit_event(self, owner: Owner, name: str, type_: str, reason: str, note: str, now_micro: str) -> None:
        """Best effort: a lost Event must not fail the tick. An existing name is a replay: skipped."""
        body = builders.event(owner, name, type_, reason, note, now_micro, self.instance)
        try:
            self._objects.create_namespaced_custom_object(
                "events.k8s.io", "v1", owner.namespace, "events", body
            )
        except client.ApiException as e:
            if e.status == 409:
                return
            log.warning(
                "could not post Event %s on %s/%s: %s", reason, owner.namespace, owner.name, api_message(e)
            )

    def patch_status(self, owner: Owner, status: dict[str, Any], resource_version: str | None) -> None:
        """Merge-patch the fields the operator owns (a None removes one); other writers' fields stay.

        With a resourceVersion the write fails (409) if the object changed since it was read, so a
        decision made on a stale read is never recorded; the next tick decides again.
        """
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self._objects.patch_namespaced_custom_object_status(
            names.GROUP,
            names.VERSION,
            owner.namespace,
            names.PLURAL,
            owner.name,
            body,
            field_manager=names.FIELD_MANAGER,
            _content_type=MERGE,
        )


def _selector(owner: Owner) -> str:
    return f"{names.LABEL_DEPLOYMENT}={owner.name},{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"


def _owned_by(obj: dict[str, Any], owner: Owner) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid for ref in refs)


def _ignore_missing(call: Any) -> None:
    try:
        call()
    except client.ApiException as e:
        if e.status != 404:
            raise


def api_message(e: client.ApiException) -> str:
    """The API server's own sentence (e.g. why a request was forbidden), not just the HTTP reason."""
    try:
        return str(json.loads(e.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(e.reason)
