"""The Argo CD health check and resource actions, run by gopher-lua the way Argo CD runs them."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlrollout.api import names
from mlrollout.cli.requests import request_id

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "manifests" / "argocd"


@pytest.fixture(scope="module")
def luarun() -> str:
    proc = subprocess.run(
        ["bash", str(Path(__file__).parent / "build-luarun.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def run(luarun: str, script: Path, obj: dict[str, Any], tmp_path: Path) -> Any:
    target = tmp_path / "obj.json"
    target.write_text(json.dumps(obj))
    proc = subprocess.run([luarun, str(script), str(target)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return json.loads(proc.stdout)


def md(status: dict[str, Any] | None = None, generation: int = 2, **annotations: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "churn", "namespace": "ml", "generation": generation},
        "spec": {"model": {"name": "churn", "alias": "champion"}},
    }
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    if status is not None:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


CANARY = {
    "phase": "Progressing",
    "stableVersion": "6",
    "message": "step 2/5: setWeight 25",
    "weights": {"stable": 75, "canary": 25},
    "rollout": {
        "candidate": {"modelName": "churn", "version": "7"},
        "strategy": "canary",
        "stepIndex": 2,
        "stepStartedAt": "2026-11-23T08:00:00Z",
    },
}
WAITING = {
    **CANARY,
    "conditions": [
        {
            "type": "Paused",
            "status": "True",
            "reason": "PauseStep",
            "message": "step 3 waits for promotion",
            "lastTransitionTime": "2026-11-23T08:00:00Z",
        }
    ],
}
ROLLED_BACK = {
    "phase": "RolledBack",
    "stableVersion": "6",
    "message": "error-rate 0.2 > max 0.01",
    "rollout": {"abortedVersion": "7", "handledRequest": "abort-v7-s2-2026-11-23T08:00:00Z"},
}


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        (md(None), "Progressing", "Waiting for the mlrollout operator"),
        (
            md({"phase": "Healthy"}, generation=3) | {"metadata": {"name": "x", "generation": 4}},
            "Progressing",
            "Waiting for the operator to observe generation 4",
        ),
        (
            md({"phase": "Healthy", "stableVersion": "6", "message": "version 6 serves 2 replicas"}),
            "Healthy",
            "Healthy: version 6 serves 2 replicas",
        ),
        (md(CANARY), "Progressing", "Progressing: step 2/5: setWeight 25"),
        (md(WAITING), "Suspended", "step 3 waits for promotion"),
        (
            md(CANARY, **{names.ANNOTATION_PAUSED: "true"}),
            "Suspended",
            "Paused by the mlrollout.io/paused annotation",
        ),
        (
            md({"phase": "Degraded", "message": "1/2 replicas available"}),
            "Degraded",
            "Degraded: 1/2 replicas available",
        ),
        (md(ROLLED_BACK), "Degraded", "RolledBack: error-rate 0.2 > max 0.01"),
        (md({"phase": "Failed"}), "Degraded", "Failed"),
        (md({"phase": "Validating"}), "Progressing", "Validating"),
    ],
)
def test_health(luarun: str, tmp_path: Path, obj: dict[str, Any], status: str, message: str) -> None:
    assert run(luarun, LUA / "health.lua", obj, tmp_path) == {"status": status, "message": message}


def test_discovery_enables_only_what_applies(luarun: str, tmp_path: Path) -> None:
    def enabled(obj: dict[str, Any]) -> set[str]:
        found = run(luarun, LUA / "actions" / "discovery.lua", obj, tmp_path)
        return {name for name, opts in found.items() if not opts.get("disabled")}

    assert enabled(md(CANARY)) == {"promote", "promote-full", "abort", "pause"}
    assert enabled(md(ROLLED_BACK)) == {"retry", "pause"}
    assert enabled(md(CANARY, **{names.ANNOTATION_PAUSED: "true"})) == {
        "promote",
        "promote-full",
        "abort",
        "resume",
    }
    assert enabled(md(None)) == {"pause"}


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("promote", CANARY),
        ("promote-full", CANARY),
        ("abort", CANARY),
        ("retry", ROLLED_BACK),
    ],
)
def test_request_actions_only_annotate_with_the_plugins_id(
    luarun: str, tmp_path: Path, action: str, status: dict[str, Any]
) -> None:
    obj = md(status)
    out = run(luarun, LUA / "actions" / action / "action.lua", obj, tmp_path)
    request = json.loads(out["metadata"]["annotations"].pop(names.ANNOTATION_REQUEST))
    assert request == {"id": request_id(action, obj), "action": action}
    del out["metadata"]["annotations"]
    assert out == obj  # nothing else changed: spec and status untouched


def test_request_actions_refuse_when_nothing_runs(luarun: str, tmp_path: Path) -> None:
    for action in ("promote", "promote-full", "abort"):
        with pytest.raises(RuntimeError, match="no rollout in progress"):
            run(luarun, LUA / "actions" / action / "action.lua", md({"phase": "Healthy"}), tmp_path)
    with pytest.raises(RuntimeError, match="no aborted or rolled-back version"):
        run(luarun, LUA / "actions" / "retry" / "action.lua", md(CANARY), tmp_path)


def test_pause_and_resume_set_the_annotation(luarun: str, tmp_path: Path) -> None:
    paused = run(luarun, LUA / "actions" / "pause" / "action.lua", md(CANARY), tmp_path)
    assert paused["metadata"]["annotations"] == {names.ANNOTATION_PAUSED: "true"}
    resumed = run(luarun, LUA / "actions" / "resume" / "action.lua", copy.deepcopy(paused), tmp_path)
    assert resumed["metadata"]["annotations"][names.ANNOTATION_PAUSED] == "false"
    health = run(luarun, LUA / "health.lua", resumed, tmp_path)
    assert health["status"] == "Progressing"
