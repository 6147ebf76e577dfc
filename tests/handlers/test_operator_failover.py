"""Failover with Kopf peering (issue 14): two operator replicas, the active one killed (SIGKILL)
mid-canary; the standby takes over once the dead one's peering record expires and finishes the
rollout with exactly one promotion."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from harness.kube import KubeEnv
from mlrollout.api import names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]  # two operators, a slow MLflow

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: kwok makes the pods ready
# The chart's copy (templates/peering.yaml installs it with the release).
PEERING_CRDS = Path(__file__).parents[2] / "charts" / "mlrollout" / "files" / "kopf-peering-crds.yaml"
LIFETIME = "10"  # seconds a silent peer counts as alive: the failover time


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


@pytest.fixture
def peering(kube: KubeEnv, namespace: str) -> str:
    kube.kubectl("apply", "--server-side", "-f", str(PEERING_CRDS), check=True)
    kube.wait_established("kopfpeerings.kopf.dev")
    return unique("mlrollout")  # the operators create the KopfPeering themselves at start


def test_the_standby_takes_over_a_canary_without_a_double_promotion(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry, peering: str
) -> None:
    model = registry.register(unique("failover"), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    peer = {"MLROLLOUT_PEERING": peering, "MLROLLOUT_PEERING_LIFETIME": LIFETIME}
    leader = operator_factory(**peer, MLROLLOUT_PEERING_PRIORITY="200", POD_NAME="operator-a")
    standby = operator_factory(**peer, MLROLLOUT_PEERING_PRIORITY="100", POD_NAME="operator-b")
    spec = {
        "model": {"name": model, "alias": "challenger"},
        "registry": {"trackingUri": registry.uri, "championAlias": "champion"},
        "serving": {"image": IMAGE, "replicas": 2},
        "strategy": {
            "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "30s"}}, {"setWeight": 100}]}
        },
    }
    cluster.create_md("fo", spec)
    eventually(lambda: status_of(cluster, "fo").get("phase") == "Healthy", 120, "Healthy on version 1")
    registry.set_alias(model, "challenger", "2")

    def at_the_pause() -> bool:
        status = status_of(cluster, "fo")
        return status.get("canaryVersion") == "2" and (status.get("weights") or {}).get("canary") == 50

    eventually(at_the_pause, 120, "the canary at 50% in its timed pause")
    leader.kill()
    killed_at = time.monotonic()
    assert not standby.exited()

    def promoted() -> bool:
        status = status_of(cluster, "fo")
        return status.get("phase") == "Healthy" and status.get("stableVersion") == "2"

    eventually(promoted, 180, "the standby to finish the rollout")
    took_over_after = time.monotonic() - killed_at
    time.sleep(5)  # a second promotion, if any, would land now
    promotions = [e for e in cluster.events("fo") if e[1] == "Promoted"]
    assert len(promotions) == 1, promotions
    history = [h for h in status_of(cluster, "fo").get("history", []) if h.get("version") == "2"]
    assert len(history) == 1, history
    assert registry.alias(model, "champion") == "2"
    assert registry.tags(model, "2").get("mlrollout.rollout") == "promoted"
    assert {d["metadata"]["labels"][names.LABEL_TRACK] for d in cluster.deployments("fo")} == {"stable"}
    print(f"standby finished the rollout {took_over_after:.1f} s after the leader was killed")
