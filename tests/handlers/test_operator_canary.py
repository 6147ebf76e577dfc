"""Canary rollouts by the real operator on the real control plane with the real MLflow server:
steps walk with the replica-ratio router read back, promotion moves the champion alias and tags the
version; a manual request promotes a held step; kills between applying children and writing status
never repeat nor skip a promotion or an alias move."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from operator_support import Cluster, OperatorProcess, Registry, eventually, unique

from mlrollout.api import names

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/example/mlrollout-runtime:0.1.0"  # not run: the control plane's kwok stages make pods ready
HOOK = Path(__file__).parent / "chaos_hook"


def canary_spec(model: str, uri: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": {"name": model, "alias": "challenger"},
        "registry": {"trackingUri": uri, "championAlias": "champion"},
        "serving": {"image": IMAGE, "replicas": 2},
        "strategy": {"canary": {"steps": steps}},
    }


def registered(registry: Registry, prefix: str) -> str:
    model = registry.register(unique(prefix), versions=2, alias="champion")
    registry.set_alias(model, "challenger", "1")
    return model


def status_of(cluster: Cluster, md: str) -> dict[str, Any]:
    return (cluster.get_md(md) or {}).get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def tracks(cluster: Cluster, md: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"][names.LABEL_TRACK]: d for d in cluster.deployments(md)}


def test_canary_walks_its_steps_and_promotes_moving_the_alias(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry
) -> None:
    model = registered(registry, "canary")
    operator_factory()
    steps = [{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {}}]
    cluster.create_md("cn", canary_spec(model, registry.uri, steps))
    eventually(lambda: status_of(cluster, "cn").get("phase") == "Healthy", 120, "Healthy on version 1")
    registry.set_alias(model, "challenger", "2")

    def held_at_last_step() -> bool:
        status = status_of(cluster, "cn")
        return condition(status, "Paused").get("reason") == "PausedAtStep"

    eventually(held_at_last_step, 180, "the canary held at its manual pause")
    status = status_of(cluster, "cn")
    assert status["phase"] == "Progressing" and status["canaryVersion"] == "2"
    assert status["rollout"]["desiredWeight"] == 50 and status["weights"]["canary"] == 50  # read back
    found = tracks(cluster, "cn")
    assert found["canary"]["spec"]["replicas"] == 2 and found["stable"]["spec"]["replicas"] == 2
    [service] = cluster.services("cn")
    assert names.LABEL_TRACK not in service.spec.selector  # one Service over both tracks
    assert registry.alias(model, "champion") == "1"

    request = {"id": "p-1", "action": "promote"}
    cluster.patch_md("cn", {"metadata": {"annotations": {names.ANNOTATION_REQUEST: json.dumps(request)}}})

    def promoted() -> bool:
        status = status_of(cluster, "cn")
        return status.get("stableVersion") == "2" and status.get("phase") == "Healthy"

    eventually(promoted, 180, "version 2 promoted and Healthy")
    assert registry.alias(model, "champion") == "2"
    assert registry.tags(model, "2")["mlrollout.rollout"] == "promoted"
    eventually(lambda: set(tracks(cluster, "cn")) == {"stable"}, 60, "the canary track removed")
    reasons = [r for _, r, _ in cluster.events("cn")]
    assert reasons.count("Promoted") == 1 and reasons.count("RequestApplied") == 1
    assert [h["version"] for h in status_of(cluster, "cn")["history"]] == ["1", "2"]

    # The same request id again, then one that does not apply: nothing moves, the refusal is visible.
    request = {"id": "p-2", "action": "abort"}
    cluster.patch_md("cn", {"metadata": {"annotations": {names.ANNOTATION_REQUEST: json.dumps(request)}}})
    eventually(
        lambda: condition(status_of(cluster, "cn"), "Request").get("reason") == "NotApplicable", 60, "refusal"
    )
    assert "RequestNotApplied" in [r for _, r, _ in cluster.events("cn")]
    assert status_of(cluster, "cn")["stableVersion"] == "2" and registry.alias(model, "champion") == "2"


def test_kills_between_children_and_status_never_repeat_or_skip_an_action(
    operator_factory: Callable[..., OperatorProcess], cluster: Cluster, registry: Registry, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    print(f"chaos seed {seed}")  # rerun a failure with MLROLLOUT_TEST_SEED=<seed>
    seed = int(os.environ.get("MLROLLOUT_TEST_SEED") or seed)
    alias_log = tmp_path / "alias-moves.log"
    env = {
        "PYTHONPATH": str(HOOK),
        "MLROLLOUT_TEST_KILL_BEFORE_STATUS": "0.3",
        "MLROLLOUT_TEST_SEED": str(seed),
        "MLROLLOUT_TEST_ALIAS_LOG": str(alias_log),
    }
    model = registered(registry, "chaos")
    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]
    cluster.create_md("kc", canary_spec(model, registry.uri, steps))
    rng = random.Random(seed)
    operator = operator_factory(**env)
    kills = 0
    switched = False
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        status = status_of(cluster, "kc")
        if not switched and status.get("phase") == "Healthy" and status.get("stableVersion") == "1":
            registry.set_alias(model, "challenger", "2")
            switched = True
        if switched and status.get("stableVersion") == "2" and status.get("phase") == "Healthy":
            break
        if operator.exited():
            kills += 1
            operator = operator_factory(**env | {"MLROLLOUT_TEST_SEED": str(rng.randrange(2**32))})
        time.sleep(0.2)
    else:
        raise AssertionError(
            f"not promoted within 400 s (seed {seed}, {kills} kills): {status_of(cluster, 'kc')}"
        )
    print(f"seed {seed}: {kills} kills inside the apply-children/write-status window")
    assert kills >= 1, "the hook never fired: the test would not show anything"
    reasons = [r for _, r, _ in cluster.events("kc")]
    assert reasons.count("VersionPinned") == 1, reasons
    assert reasons.count("Promoted") == 1, reasons
    moves = alias_log.read_text().splitlines() if alias_log.exists() else []
    assert moves == [f"{model} champion 2"], moves  # moved exactly once, never twice, never skipped
    assert registry.alias(model, "champion") == "2"
