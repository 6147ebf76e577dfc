"""Names the operator and its users share: API coordinates, labels, annotations, child objects."""

from __future__ import annotations

import hashlib
import re

GROUP = "mlrollout.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md", "mdep")
CATEGORIES = ("mlrollout",)
CRD_NAME = f"{PLURAL}.{GROUP}"

FIELD_MANAGER = "mlrollout-operator"
FINALIZER = f"{GROUP}/finalizer"
# Kopf's own bookkeeping (progress, last-handled spec) lives in annotations under this prefix,
# never in status and never under kopf.zalando.org.
KOPF_ANNOTATION_PREFIX = f"operator.{GROUP}"

# Labels on every child object and serving pod.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlrollout"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_TRACK = f"{GROUP}/track"
LABEL_MODEL_NAME = f"{GROUP}/model-name"
LABEL_MODEL_VERSION = f"{GROUP}/model-version"

# Annotations.
ANNOTATION_MODEL_URI = f"{GROUP}/model-uri"
ANNOTATION_PAUSED = f"{GROUP}/paused"
# A manual action, as JSON {"id": "<unique>", "action": "promote|promote-full|abort|retry|undo|approve",
# "version": "<for undo --to-version>"}: acted on once per id (status.rollout.handledRequest), and
# never removed by the operator, so it survives a GitOps sync.
ANNOTATION_REQUEST = f"{GROUP}/request"
REQUEST_ACTIONS = ("promote", "promote-full", "abort", "retry", "undo", "approve")
# Hash of what the operator last applied to a child: tells "in sync with the spec" without diffing.
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"
TRACK_PREVIEW = "preview"
TRACK_SHADOW = "shadow"
TRACKS = (TRACK_STABLE, TRACK_CANARY, TRACK_PREVIEW, TRACK_SHADOW)

SERVING_PORT_NAME = "http"
CONTAINER_NAME = "model"

_DNS_LABEL_MAX = 63
_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9._-]")


def child_name(deployment: str, suffix: str = "") -> str:
    """A DNS-1123 label for a child object; shortened with a stable hash when too long."""
    name = f"{deployment}-{suffix}" if suffix else deployment
    if len(name) <= _DNS_LABEL_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: _DNS_LABEL_MAX - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def serving_name(deployment: str, track: str) -> str:
    return child_name(deployment, track)


def service_name(deployment: str) -> str:
    """The Service clients call: it carries live traffic, whatever the tracks behind it."""
    return child_name(deployment)


def preview_service_name(deployment: str) -> str:
    """Blue-green's preview Service."""
    return child_name(deployment, "preview")


def track_service_name(deployment: str, track: str) -> str:
    """A Service over one track only (the shadow's: the stable pods mirror to it)."""
    return child_name(deployment, track)


def live_config_name(deployment: str) -> str:
    """The ConfigMap the stable pods mount and reload (mirroring): changing it restarts nothing."""
    return child_name(deployment, "live")


LIVE_CONFIG_DIR = "/etc/mlrollout/live"
LIVE_CONFIG_KEY = "live.json"


def label_value(value: str) -> str:
    """A valid label value (<= 63 chars, alphanumeric ends) for arbitrary text such as a model name."""
    cleaned = _LABEL_VALUE_INVALID.sub("-", value).strip("-_.")
    if len(cleaned) <= _DNS_LABEL_MAX:
        return cleaned
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{cleaned[: _DNS_LABEL_MAX - 9].rstrip('-_.')}-{digest}"
