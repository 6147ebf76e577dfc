"""Blue-green by the real operator on the real control plane: preview Deployment and Service, manual
promotion switching the active Service's selector, then an abort inside the scale-down window that
switches it straight back (the old version never went away); the alias never moves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually
from test_operator_canary import condition, registered, status_of, tracks

from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"


def selector(cluster: Cluster, md: str, service: str) -> dict[str, str]:
    found = {s.metadata.name: s for s in cluster.services(md)}
    return dict(found[service].spec.selector) if service in found else {}


def request(cluster: Cluster, md: str, id_: str, action: str) -> None:
    body = json.dumps({"id": id_, "action": action})
    cluster.patch_md(md, {"metadata": {"annotations": {names.ANNOTATION_REQUEST: body}}})


def test_blue_green_promotes_by_switching_and_rolls_back_instantly_in_the_window(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registered(registry, "bg")
    operator_factory()
    cluster.create_md(
        "bg",
        {
            "model": {"name": model, "alias": "challenger"},
            "registry": {"trackingUri": registry.uri, "championAlias": "champion"},
            "serving": {"image": IMAGE, "replicas": 2},
            "strategy": {"blueGreen": {"scaleDownDelay": "10m"}},
        },
    )
    eventually(lambda: status_of(cluster, "bg").get("phase") == "Healthy", 120, "Healthy on version 1")
    registry.set_alias(model, "challenger", "2")
    eventually(
        lambda: condition(status_of(cluster, "bg"), "Paused").get("reason") == "AwaitingPromotion",
        180,
        "the preview up and waiting for promotion",
    )
    assert selector(cluster, "bg", "bg-preview")[names.LABEL_TRACK] == "preview"
    assert selector(cluster, "bg", "bg")[names.LABEL_TRACK] == "stable"
    assert tracks(cluster, "bg")["preview"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "2"

    request(cluster, "bg", "go", "promote")
    eventually(lambda: selector(cluster, "bg", "bg").get(names.LABEL_TRACK) == "preview", 60, "switched")
    eventually(
        lambda: condition(status_of(cluster, "bg"), "Progressing").get("reason") == "ScaleDownDelay",
        60,
        "in the scale-down window",
    )
    assert tracks(cluster, "bg")["stable"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"

    asked = time.monotonic()
    request(cluster, "bg", "back", "abort")
    eventually(lambda: selector(cluster, "bg", "bg").get(names.LABEL_TRACK) == "stable", 60, "switched back")
    print(f"switched back {time.monotonic() - asked:.1f} s after the abort request")
    # Children are applied before status is written: the phase follows the switch a moment later.
    eventually(lambda: status_of(cluster, "bg").get("phase") == "RolledBack", 30, "RolledBack")
    assert status_of(cluster, "bg")["stableVersion"] == "1"
    assert registry.alias(model, "champion") == "1"
    assert registry.tags(model, "2")["mlrollout.rollout"] == "aborted"
    eventually(lambda: set(tracks(cluster, "bg")) == {"stable"}, 60, "the preview removed")
