"""Pure builders of child manifests: dicts in, dicts out, no client, no clock."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlrollout.adapters.k8s import inference_log, pods
from mlrollout.adapters.k8s.owner import Owner
from mlrollout.api import names
from mlrollout.api.serving import Resources
from mlrollout.api.spec import ModelDeploymentSpec

Manifest = dict[str, Any]


def common_labels(owner: Owner) -> dict[str, str]:
    return {
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_PART_OF: "mlrollout",
        names.LABEL_DEPLOYMENT: owner.name,
    }


def model_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def serving_deployment(
    owner: Owner,
    spec: ModelDeploymentSpec,
    track: str,
    model_name: str,
    version: str,
    replicas: int | None = None,
    hpa_owned: bool = False,
) -> Manifest:
    """The Deployment of one track, pinned to an exact version: MLflow resolves aliases only at start.

    `replicas` None means spec.serving.replicas; with `hpa_owned` the field is left out, so the
    operator never fights a HorizontalPodAutoscaler over it.
    """
    selector = {names.LABEL_DEPLOYMENT: owner.name, names.LABEL_TRACK: track}
    pod_labels = {
        **common_labels(owner),
        names.LABEL_TRACK: track,
        names.LABEL_MODEL_NAME: names.label_value(model_name),
        names.LABEL_MODEL_VERSION: names.label_value(version),
    }
    manifest: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.serving_name(owner.name, track),
            "namespace": owner.namespace,
            "labels": pod_labels,
            "annotations": {names.ANNOTATION_MODEL_URI: model_uri(model_name, version)},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "replicas": spec.serving.replicas if replicas is None else replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        names.ANNOTATION_MODEL_URI: model_uri(model_name, version),
                        # The widely used scrape convention, for Prometheus set-ups without PodMonitors.
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.serving.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _pod_spec(owner, spec, track, model_name, version),
            },
        },
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return without_replicas(manifest) if hpa_owned else manifest


def without_replicas(manifest: Manifest) -> Manifest:
    """The same Deployment with `replicas` left to its HorizontalPodAutoscaler (server-side apply then
    gives up the field instead of resetting it every tick), hash recomputed."""
    out: Manifest = {
        **manifest,
        "metadata": {**manifest["metadata"], "annotations": dict(manifest["metadata"]["annotations"])},
        "spec": {k: v for k, v in manifest["spec"].items() if k != "replicas"},
    }
    out["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(out)
    return out


def _pod_spec(owner: Owner, spec: ModelDeploymentSpec, track: str, model_name: str, version: str) -> Manifest:
    serving = spec.serving
    log_volumes, log_mounts = inference_log.volumes(spec, read_only=False)
    live_volumes, live_mounts, live_env = _live_config(owner, track)
    args = [
        model_uri(model_name, version),
        "--port",
        str(serving.port),
        "--model-name",
        model_name,
        "--model-version",
        version,
        "--track",
        track,
    ]
    if serving.trusted_types:
        args += ["--trusted-types", ",".join(serving.trusted_types)]
    if serving.allow_code:
        args.append("--allow-code")
    if serving.batching is not None:
        args += ["--max-batch-size", str(serving.batching.max_batch_size)]
        args += ["--max-delay-ms", str(serving.batching.max_delay_ms)]
    container: Manifest = {
        "name": names.CONTAINER_NAME,
        "image": serving.image,
        "command": ["mlrollout-runtime"],
        "args": args,
        "env": [
            {"name": "MLFLOW_TRACKING_URI", "value": spec.registry.tracking_uri},
            {"name": "MLROLLOUT_MODEL_NAME", "value": model_name},
            {"name": "MLROLLOUT_MODEL_VERSION", "value": version},
            {"name": "MLROLLOUT_TRACK", "value": track},
            *inference_log.env(owner, spec),
            *({"name": e.name, "value": e.value} for e in serving.env),
            *feedback_env(spec),
            *live_env,
        ],
        "ports": [{"name": names.SERVING_PORT_NAME, "containerPort": serving.port, "protocol": "TCP"}],
        "readinessProbe": _probe("/health", serving.port, period=5),
        "livenessProbe": _probe("/ping", serving.port, period=10, failures=6),
    }
    if serving.resources is not None:
        container["resources"] = _resources(serving.resources)
    pod: Manifest = {
        "containers": [pods.hardened(spec, container, mounts=[*log_mounts, *live_mounts])],
        "volumes": [dict(pods.TMP_VOLUME), *log_volumes, *live_volumes],
        "securityContext": pods.pod_security(),
    }
    if serving.service_account_name:
        pod["serviceAccountName"] = serving.service_account_name
    if serving.node_selector:
        pod["nodeSelector"] = dict(serving.node_selector)
    return pod


def _live_config(owner: Owner, track: str) -> tuple[list[Manifest], list[Manifest], list[Manifest]]:
    """Stable pods mount the live-config ConfigMap and reload it (mirroring on and off without a
    restart); other tracks never mirror."""
    if track != names.TRACK_STABLE:
        return [], [], []
    volume = {"name": "live-config", "configMap": {"name": names.live_config_name(owner.name)}}
    mount = {"name": "live-config", "mountPath": names.LIVE_CONFIG_DIR, "readOnly": True}
    env = {"name": "MLROLLOUT_CONFIG_FILE", "value": f"{names.LIVE_CONFIG_DIR}/{names.LIVE_CONFIG_KEY}"}
    return [volume], [mount], [env]


def live_config_map(owner: Owner, mirror: tuple[str, int, float] | None) -> Manifest:
    """The stable pods' live config: mirroring to `mirror` = (url, percent, relative tolerance) or off."""
    url, percent, tolerance = mirror if mirror is not None else ("", 0, 0.0)
    doc = {"mirroring": {"url": url, "percent": percent, "relativeTolerance": tolerance}}
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.live_config_name(owner.name),
            "namespace": owner.namespace,
            "labels": common_labels(owner),
            "annotations": {},
            "ownerReferences": [owner.reference()],
        },
        "data": {names.LIVE_CONFIG_KEY: json.dumps(doc, sort_keys=True)},
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


def track_service_url(owner: Owner, track: str) -> str:
    """The in-cluster address of a track's own Service (the mirror target of the stable pods)."""
    return f"http://{names.track_service_name(owner.name, track)}.{owner.namespace}.svc:80"


def feedback_env(spec: ModelDeploymentSpec) -> list[Manifest]:
    """/feedback's bounds: the A/B metric is the one outcome besides `label`; the token stays in its
    Secret (secretKeyRef: never in the Deployment, status or logs)."""
    env: list[Manifest] = []
    ab = spec.strategy.ab_test
    if ab is not None:
        env.append({"name": "MLROLLOUT_FEEDBACK_OUTCOMES", "value": f"{ab.metric.name}={ab.metric.kind}"})
    secret = spec.serving.feedback.token_secret if spec.serving.feedback else None
    if secret is not None:
        ref = {"name": secret.name, "key": secret.key}
        env.append({"name": "MLROLLOUT_FEEDBACK_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return env


def _probe(path: str, port: int, period: int, failures: int = 3) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _resources(resources: Resources) -> Manifest:
    out: Manifest = {}
    if resources.requests:
        out["requests"] = {k: str(v) for k, v in resources.requests.items()}
    if resources.limits:
        out["limits"] = {k: str(v) for k, v in resources.limits.items()}
    return out


def service(
    owner: Owner, spec: ModelDeploymentSpec, selector_track: str | None = names.TRACK_STABLE
) -> Manifest:
    """The live-traffic Service: one track (stable, or the active colour), or every track (None) for
    the replica-ratio router, whose weights are the tracks' replica counts behind this Service."""
    selector = {names.LABEL_DEPLOYMENT: owner.name}
    if selector_track is not None:
        selector[names.LABEL_TRACK] = selector_track
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service_name(owner.name),
            "namespace": owner.namespace,
            "labels": common_labels(owner),
            "annotations": {},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "selector": selector,
            "ports": [
                {
                    "name": names.SERVING_PORT_NAME,
                    "port": 80,
                    "targetPort": names.SERVING_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


def preview_service(owner: Owner, spec: ModelDeploymentSpec) -> Manifest:
    """Blue-green: the preview track behind its own Service, reachable before promotion."""
    manifest = service(owner, spec, names.TRACK_PREVIEW)
    manifest["metadata"]["name"] = names.preview_service_name(owner.name)
    manifest["metadata"]["annotations"] = {}
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


def track_service(owner: Owner, spec: ModelDeploymentSpec, track: str) -> Manifest:
    """A Service over one track only: the shadow's, which the stable pods mirror to."""
    manifest = service(owner, spec, track)
    manifest["metadata"]["name"] = names.track_service_name(owner.name, track)
    manifest["metadata"]["annotations"] = {}
    manifest["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH] = spec_hash(manifest)
    return manifest


def event(
    owner: Owner, name: str, type_: str, reason: str, note: str, now_micro: str, instance: str
) -> Manifest:
    """An events.k8s.io/v1 Event about the ModelDeployment (kubectl describe shows it)."""
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": owner.namespace},
        "eventTime": now_micro,
        "reportingController": f"{names.GROUP}/operator",
        "reportingInstance": instance[:128],
        "action": "Reconcile",
        "reason": reason[:128],
        "note": note[:1024],
        "type": type_,
        "regarding": {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
        },
    }


def spec_hash(manifest: Manifest) -> str:
    """Hash of a manifest without its own hash annotation."""
    annotations = {
        k: v
        for k, v in manifest["metadata"].get("annotations", {}).items()
        if k != names.ANNOTATION_SPEC_HASH
    }
    content = {**manifest, "metadata": {**manifest["metadata"], "annotations": annotations}}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
