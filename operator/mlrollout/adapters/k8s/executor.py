"""The one place that writes to the API server: server-side apply, deletes, Events, status patches.

Every call is idempotent: applying the same manifest twice changes nothing, deleting what is gone
is fine, so a tick interrupted anywhere can simply run again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from mlrollout.adapters.k8s import builders
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
log = logging.getLogger(__name__)

# Grouped kinds go through the generic custom-objects endpoints (they return plain dicts).
_GROUPED = {"Deployment": ("apps", "v1", "deployments"), "Event": ("events.k8s.io", "v1", "events")}


@dataclass
class KubeExecutor:
    api: client.ApiClient
    instance: str = "mlrollout-operator"

    @property
    def _objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def apply(self, manifest: builders.Manifest) -> None:
        meta = manifest["metadata"]
        kind = manifest["kind"]
        common: dict[str, Any] = {"field_manager": names.FIELD_MANAGER, "force": True, "_content_type": APPLY}
        if kind == "Service":
            self._core.patch_namespaced_service(meta["name"], meta["namespace"], manifest, **common)
            return
        group, version, plural = _GROUPED[kind]
        self._objects.patch_namespaced_custom_object(
            group, version, meta["namespace"], plural, meta["name"], manifest, **common
        )

    def apply_if_changed(self, manifest: builders.Manifest) -> None:
        """Apply only when the object is missing or its spec-hash annotation differs: no write (and
        no fight with an HPA or a router editing the object) when nothing the operator owns changed."""
        meta = manifest["metadata"]
        want = meta["annotations"][names.ANNOTATION_SPEC_HASH]
        current = self._read(manifest["kind"], meta["namespace"], meta["name"])
        if (
            current is not None
            and (current.get("metadata", {}).get("annotations") or {}).get(names.ANNOTATION_SPEC_HASH) == want
        ):
            return
        self.apply(manifest)

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            if kind == "Service":
                found: Any = self._core.read_namespaced_service(name, namespace)
                return {"metadata": {"annotations": dict(found.metadata.annotations or {})}}
            group, version, plural = _GROUPED[kind]
            obj: dict[str, Any] = self._objects.get_namespaced_custom_object(  # type: ignore[assignment]
                group, version, namespace, plural, name
            )
            return obj
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete_deployment(self, namespace: str, name: str) -> None:
        _ignore_missing(
            lambda: self._objects.delete_namespaced_custom_object(
                "apps", "v1", namespace, "deployments", name, propagation_policy="Background"
            )
        )

    def list_deployments(self, owner: Owner) -> list[dict[str, Any]]:
        found: dict[str, Any] = self._objects.list_namespaced_custom_object(  # type: ignore[assignment]
            "apps", "v1", owner.namespace, "deployments", label_selector=_selector(owner)
        )
        return [d for d in found.get("items", []) if _owned_by(d, owner)]

    def service_exists(self, owner: Owner) -> bool:
        try:
            self._core.read_namespaced_service(names.service_name(owner.name), owner.namespace)
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def delete_service(self, namespace: str, name: str) -> None:
        _ignore_missing(lambda: self._core.delete_namespaced_service(name, namespace))

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
