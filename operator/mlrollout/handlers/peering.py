"""The peering object Kopf's replicas meet in: created at start when missing. Kopf only patches it,
and a replica that finds none runs as if alone, so two replicas would both act; Helm cannot create
it in the release that installs its CRD."""

from __future__ import annotations

import logging

from kubernetes import client

log = logging.getLogger(__name__)


def ensure(api: client.ApiClient, name: str, namespaces: tuple[str, ...]) -> None:
    """A KopfPeering in each watched namespace, or one ClusterKopfPeering when watching all of them.
    Already there (another replica made it): nothing to do."""
    objects = client.CustomObjectsApi(api)
    try:
        if namespaces:
            body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}
            for namespace in namespaces:
                try:
                    objects.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", body)
                except client.ApiException as e:
                    if e.status != 409:
                        raise
        else:
            body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
            try:
                objects.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
            except client.ApiException as e:
                if e.status != 409:
                    raise
    except client.ApiException as e:
        # Kopf would only say "not found" at its keep-alives; say why here (no CRDs, no RBAC).
        log.error("could not create the peering object %r: %s %s", name, e.status, e.reason)
