"""The children the operator owns and watches: a change to one wakes its ModelDeployment's reconcile
at once, so nothing polls them. Kept free of Kopf so the chart's RBAC test can read the list.

The same watches feed the operator's copy of its children (adapters/k8s/cache.py): a reconcile
reads them from there, not from the API server.

To watch another kind (an HTTPRoute, a VirtualService), add it to WATCHED: the wiring registers a
watch per entry (server-side filtered by the operator's managed-by label) and the chart must grant
list and watch on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlrollout.api import names


@dataclass(frozen=True)
class ChildKind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    optional: bool = False  # watched only when the cluster serves it (Gateway API, Istio)


WATCHED: tuple[ChildKind, ...] = (
    ChildKind("Deployment", "apps", "v1", "deployments"),
    ChildKind("Service", "", "v1", "services"),
    ChildKind("Job", "batch", "v1", "jobs"),
    ChildKind("CronJob", "batch", "v1", "cronjobs"),
    ChildKind("ConfigMap", "", "v1", "configmaps"),  # the live config and the monitor's config
)

# Server-side filter of every child watch: objects of other owners never reach the operator.
CHILD_SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"


def owner_uids(body: Mapping[str, Any]) -> frozenset[str]:
    """The ModelDeployments that own the child by reference (the usual way)."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return frozenset(
        str(ref["uid"])
        for ref in refs
        if ref.get("kind") == names.KIND
        and str(ref.get("apiVersion", "")).startswith(f"{names.GROUP}/")
        and ref.get("uid")
    )


def owner_name(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) from the operator's label: also covers a CronJob's Jobs, whose owner
    reference names the CronJob, not the ModelDeployment."""
    meta = body.get("metadata") or {}
    name = (meta.get("labels") or {}).get(names.LABEL_DEPLOYMENT)
    namespace = meta.get("namespace")
    return (str(namespace), str(name)) if name and namespace else None


def change_key(body: Mapping[str, Any]) -> str:
    """A short digest of what the reconcile reads of a child: its spec generation and its status. A
    watch event that changes neither (a managedFields or resourceVersion bump) wakes nothing; only
    the digest is kept per child, never the object."""
    meta = body.get("metadata") or {}
    text = json.dumps(
        [meta.get("generation"), meta.get("deletionTimestamp"), body.get("status")],
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
