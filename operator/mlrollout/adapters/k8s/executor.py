"""The one place that writes to the API server: server-side apply, deletes, Events, status patches.

Every call is idempotent: applying the same manifest twice changes nothing, deleting what is gone
is fine, so a tick interrupted anywhere can simply run again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes import client

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.cache import ChildCache
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
# With a watch cache the HorizontalPodAutoscalers of a namespace are listed at most this often (they
# are the user's, not watched): an HPA added later takes over replicas within this time.
HPA_TTL = 30.0


@dataclass
class KubeExecutor:
    api: client.ApiClient
    instance: str = "mlrollout-operator"
    # Spec-hash annotations of children as last read: an apply with the same hash is skipped, so an
    # unchanged tick writes nothing (and never fights an HPA or anyone else over fields).
    _hashes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Deployments an HPA scales, per namespace, as last read: their replicas are never applied.
    _hpa_targets: dict[str, frozenset[str]] = field(default_factory=dict)
    _hpa_read_at: dict[str, float] = field(default_factory=dict)
    writes: int = 0
    # The operator's watch copy of its children (None: every read asks the API server). Reads come
    # from it unless use_cache is off (the slow resync's fresh tick, which also refreshes it).
    cache: ChildCache | None = None
    use_cache: bool = True

    def uncached(self) -> KubeExecutor:
        """The same executor reading from the API server and refreshing the cache with what it reads:
        a safety net against a missed or dropped watch event."""
        return replace(self, use_cache=False)

    def _cached(self, kind: str) -> ChildCache | None:
        """The cache to read `kind` from, or None: ask the API server."""
        cache = self.cache
        return cache if cache is not None and self.use_cache and cache.holds(kind) else None

    def _write_through(self, kind: str, body: Mapping[str, Any] | None) -> None:
        if self.cache is not None and body is not None:
            self.cache.put(kind, body)

    def _forget(self, kind: str, namespace: str, name: str) -> None:
        self._hashes.pop((kind, namespace, name), None)
        if self.cache is not None:
            self.cache.forget(kind, namespace, name)

    def _known_hash(self, key: tuple[str, str, str]) -> str | None:
        """The spec-hash the child has now, as far as the operator knows (None: apply it)."""
        cache = self._cached(key[0])
        if cache is None:
            return self._hashes.get(key)
        held = cache.get(*key)
        if held is None or held["metadata"].get("deletionTimestamp"):
            return None
        return (held["metadata"].get("annotations") or {}).get(names.ANNOTATION_SPEC_HASH)

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
        """Names of the Deployments a HorizontalPodAutoscaler in `namespace` targets (read now, or
        with a watch cache at most HPA_TTL ago)."""
        if (
            self._cached("Deployment") is not None
            and time.monotonic() - self._hpa_read_at.get(namespace, -HPA_TTL) < HPA_TTL
        ):
            return self._hpa_targets.get(namespace, frozenset())
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
        self._hpa_read_at[namespace] = time.monotonic()
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
        if wanted and self._known_hash(key) == wanted:
            return
        self.writes += 1
        self._hashes.pop(key, None)
        # The raw reply: the client maps only 200 to an object, so a create (201) would read as None.
        common: dict[str, Any] = {
            "field_manager": names.FIELD_MANAGER,
            "force": True,
            "_content_type": APPLY,
            "_preload_content": False,
        }
        # Direct calls, one per kind: the chart's least-privilege test derives rights from them.
        reply: Any
        if kind == "Service":
            reply = self._core.patch_namespaced_service(meta["name"], meta["namespace"], manifest, **common)
        elif kind == "ConfigMap":
            reply = self._core.patch_namespaced_config_map(
                meta["name"], meta["namespace"], manifest, **common
            )
        else:
            group, version, plural = _GROUPED[kind]
            reply = self._objects.patch_namespaced_custom_object(
                group, version, meta["namespace"], plural, meta["name"], manifest, **common
            )
        applied = _json_reply(reply)
        if wanted:
            self._hashes[key] = wanted
        self._write_through(kind, applied)

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._forget("Deployment", namespace, name)
        _ignore_missing(
            lambda: self._objects.delete_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", name, propagation_policy="Background"
            )
        )

    def list_deployments(self, owner: Owner) -> list[dict[str, Any]]:
        cache = self._cached("Deployment")
        if cache is not None:
            return [d for d in cache.owned("Deployment", owner.namespace, owner.name) if _owned_by(d, owner)]
        found: dict[str, Any] = self._objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "apps", "v1", owner.namespace, "deployments", label_selector=_selector(owner)
        )
        items = [d | {"kind": "Deployment"} for d in found.get("items", []) if _owned_by(d, owner)]
        # This owner's tracks only (not every Deployment of the namespace: O(1), not O(objects)).
        for track in names.TRACKS:
            self._hashes.pop(("Deployment", owner.namespace, names.serving_name(owner.name, track)), None)
        if self.cache is not None:  # a fresh read: what the watch may have missed is set right
            for held in self.cache.owned("Deployment", owner.namespace, owner.name):
                self.cache.forget("Deployment", owner.namespace, held["metadata"]["name"])
        for item in items:
            self._remember(item)
            self._write_through("Deployment", item)
        return items

    def service_exists(self, owner: Owner) -> bool:
        return self.read_service(owner) is not None

    def read_service(self, owner: Owner, name: str | None = None) -> dict[str, Any] | None:
        name = name or names.service_name(owner.name)
        cache = self._cached("Service")
        if cache is not None:
            return cache.get("Service", owner.namespace, name)
        self._forget("Service", owner.namespace, name)
        try:
            found = self._core.read_namespaced_service(name, owner.namespace)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        body: dict[str, Any] = self.api.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
        body["kind"] = "Service"
        self._remember(body)
        self._write_through("Service", body)
        return body

    def delete_service(self, namespace: str, name: str) -> None:
        self._forget("Service", namespace, name)
        _ignore_missing(lambda: self._core.delete_namespaced_service(name, namespace))

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Job as it is now (None: gone, so an apply creates it again)."""
        cache = self._cached("Job")
        if cache is not None:
            return cache.get("Job", namespace, name)
        self._forget("Job", namespace, name)
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
        self._write_through("Job", found)
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
        self._forget("Job", namespace, name)
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
            cache = self._cached(kind)
            if cache is not None:
                present = present or cache.get(kind, owner.namespace, name) is not None
                continue
            self._forget(kind, owner.namespace, name)
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
            self._write_through(kind, body)
        return present

    def delete_monitor(self, namespace: str, name: str) -> None:
        """The CronJob (its Jobs and pods follow in the background) and its ConfigMap."""
        self._forget("CronJob", namespace, name)
        self._forget("ConfigMap", namespace, name)
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


def _json_reply(reply: Any) -> dict[str, Any] | None:
    """The object a write answered with (an urllib3 response read raw), None if it is not one."""
    try:
        found = json.loads(reply.data)
    except (AttributeError, TypeError, ValueError):
        return None
    return found if isinstance(found, dict) and "metadata" in found else None


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
