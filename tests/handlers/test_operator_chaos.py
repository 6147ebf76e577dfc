"""kill -9 at arbitrary moments while several ModelDeployments are created and edited: the next
operator converges from status alone, with no duplicate children and no replayed history."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"


def test_repeated_kills_converge(
    operator_factory: Callable[[], OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    rng = random.Random(7)
    model = registry.register(unique("chaos"), versions=1, alias="champion")
    mds = [f"chaos-{i}" for i in range(3)]
    operator = operator_factory()
    for md in mds:
        cluster.create_md(
            md,
            {
                "model": {"name": model, "alias": "champion"},
                "registry": {"trackingUri": registry.uri},
                "serving": {"image": IMAGE, "replicas": 1},
                "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            },
        )
    replicas = dict.fromkeys(mds, 1)
    for round_ in range(4):
        time.sleep(rng.uniform(0.2, 2.5))
        operator.kill()
        md = rng.choice(mds)
        replicas[md] = round_ + 2
        cluster.patch_md(md, {"spec": {"serving": {"replicas": replicas[md]}}})
        operator = operator_factory()

    for md in mds:

        def settled(md: str = md) -> bool:
            body = cluster.get_md(md) or {}
            status = body.get("status") or {}
            return status.get("phase") == "Healthy" and status.get("observedGeneration") == body.get(
                "metadata", {}
            ).get("generation")

        eventually(settled, 120, f"{md} Healthy")
        [deployment] = cluster.deployments(md)
        assert deployment["spec"]["replicas"] == replicas[md]
        assert deployment["spec"]["template"]["metadata"]["labels"][names.LABEL_MODEL_VERSION] == "1"
        assert len(cluster.services(md)) == 1
        reasons = [r for _, r, _ in cluster.events(md)]
        assert reasons.count("VersionPinned") <= 1
