"""The Argo CD health check and resource actions, run by gopher-lua the way Argo CD runs them.

`luarun` (tests/argocd/luarun, built into the shared cache) sets gopher-lua up as Argo CD does and
treats the result as Argo CD does: health statuses it does not know become Unknown, discovery is a
list of actions with `disabled`, and an action becomes the JSON merge patch Argo CD would send.
Each file in fixtures/ is an object in a situation the operator produces, with the health and the
enabled actions expected for it; objects captured from the integration tests go there too.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlrollout.api import names
from mlrollout.cli.requests import AlreadyDone, Patch, Refusal, plan, request_id

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "manifests" / "argocd"
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.json"))
REQUEST_ACTIONS = ("promote", "promote-full", "abort", "retry")


@pytest.fixture(scope="module")
def luarun() -> str:
    proc = subprocess.run(
        ["bash", str(Path(__file__).parent / "build-luarun.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


class LuaError(RuntimeError):
    pass


def run(luarun: str, mode: str, script: Path, obj: dict[str, Any], tmp_path: Path) -> Any:
    target = tmp_path / "obj.json"
    target.write_text(json.dumps(obj))
    proc = subprocess.run(
        [luarun, mode, str(script), str(target)], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise LuaError(proc.stderr.strip())
    return json.loads(proc.stdout)


def action(luarun: str, name: str, obj: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    patch: dict[str, Any] = run(luarun, "action", LUA / "actions" / name / "action.lua", obj, tmp_path)[
        "patch"
    ]
    return patch


def enabled(luarun: str, obj: dict[str, Any], tmp_path: Path) -> list[str]:
    found = run(luarun, "discovery", LUA / "actions" / "discovery.lua", obj, tmp_path)
    return [a["name"] for a in found if not a["disabled"]]


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_every_action_is_listed_by_discovery(luarun: str, tmp_path: Path) -> None:
    listed = run(
        luarun, "discovery", LUA / "actions" / "discovery.lua", load(FIXTURES[0])["object"], tmp_path
    )
    defined = sorted(p.parent.name for p in (LUA / "actions").glob("*/action.lua"))
    assert [a["name"] for a in listed] == defined


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_health(luarun: str, tmp_path: Path, fixture: Path) -> None:
    case = load(fixture)
    assert run(luarun, "health", LUA / "health.lua", case["object"], tmp_path) == case["health"]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_discovery_enables_what_the_plugin_accepts(luarun: str, tmp_path: Path, fixture: Path) -> None:
    """An action is enabled in Argo CD exactly when `kubectl mlrollout` would write something."""
    obj = load(fixture)["object"]
    shown = enabled(luarun, obj, tmp_path)
    assert shown == load(fixture)["enabled"]
    for name in ("promote", "promote-full", "abort", "retry", "pause", "resume"):
        assert (name in shown) == isinstance(plan(name, obj), Patch), name


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_request_actions_patch_one_annotation_with_the_plugins_id(
    luarun: str, tmp_path: Path, fixture: Path
) -> None:
    obj = load(fixture)["object"]
    for name in REQUEST_ACTIONS:
        if isinstance(plan(name, obj), Refusal):
            with pytest.raises(LuaError):
                action(luarun, name, obj, tmp_path)
            continue
        patch = action(luarun, name, obj, tmp_path)
        assert list(patch) == ["metadata"] and list(patch["metadata"]) == ["annotations"], patch  # never spec
        written = patch["metadata"]["annotations"]
        assert list(written) == [names.ANNOTATION_REQUEST]
        assert json.loads(written[names.ANNOTATION_REQUEST]) == {"id": request_id(name, obj), "action": name}
        # The plugin, run after the click, sees the same request and writes nothing.
        clicked = copy.deepcopy(obj)
        clicked["metadata"]["annotations"].update(written)
        assert isinstance(plan(name, clicked), AlreadyDone)


def test_refusals_say_why(luarun: str, tmp_path: Path) -> None:
    healthy = load(Path(__file__).parent / "fixtures" / "healthy.json")["object"]
    for name in ("promote", "promote-full", "abort"):
        with pytest.raises(LuaError, match="no rollout in progress"):
            action(luarun, name, healthy, tmp_path)
    with pytest.raises(LuaError, match="no aborted or rolled-back version"):
        action(luarun, "retry", healthy, tmp_path)
    validating = load(Path(__file__).parent / "fixtures" / "validating.json")["object"]
    with pytest.raises(LuaError, match="validation gate"):
        action(luarun, "promote", validating, tmp_path)


def test_retry_id_alternates_and_never_grows(luarun: str, tmp_path: Path) -> None:
    """Retrying, being rolled back again and retrying once more is a new request each time."""
    obj = load(Path(__file__).parent / "fixtures" / "rolled-back.json")["object"]
    seen = []
    for _ in range(4):
        patch = action(luarun, "retry", obj, tmp_path)
        request = json.loads(patch["metadata"]["annotations"][names.ANNOTATION_REQUEST])
        assert request["id"] == request_id("retry", obj) and len(request["id"]) <= 32
        assert request["id"] != obj["status"]["rollout"]["handledRequest"]
        seen.append(request["id"])
        obj["status"]["rollout"]["handledRequest"] = request["id"]  # handled, then rolled back again
    assert seen == ["retry-v7-a", "retry-v7-b", "retry-v7-a", "retry-v7-b"]


def test_pause_and_resume(luarun: str, tmp_path: Path) -> None:
    healthy = load(Path(__file__).parent / "fixtures" / "healthy.json")["object"]
    assert action(luarun, "pause", healthy, tmp_path) == {
        "metadata": {"annotations": {names.ANNOTATION_PAUSED: "true"}}
    }
    paused = load(Path(__file__).parent / "fixtures" / "paused-by-annotation.json")["object"]
    assert action(luarun, "pause", paused, tmp_path) == {}  # Argo CD sends nothing
    # With other annotations present, resume removes the key (null in the merge patch) ...
    assert action(luarun, "resume", paused, tmp_path) == {
        "metadata": {"annotations": {names.ANNOTATION_PAUSED: None}}
    }
    # ... but an emptied table would be put back by Argo CD, so the lone annotation becomes "false".
    lone = copy.deepcopy(paused)
    lone["metadata"]["annotations"] = {names.ANNOTATION_PAUSED: "true"}
    assert action(luarun, "resume", lone, tmp_path) == {
        "metadata": {"annotations": {names.ANNOTATION_PAUSED: "false"}}
    }
    lone["metadata"]["annotations"][names.ANNOTATION_PAUSED] = "false"  # fixtures/resumed-by-argocd
    assert isinstance(plan("pause", lone), Patch)


def test_luarun_follows_argo_cd(luarun: str, tmp_path: Path) -> None:
    """The harness itself: unknown health statuses, Lua errors and the 1 s deadline."""
    obj = load(FIXTURES[0])["object"]
    odd = tmp_path / "odd.lua"
    odd.write_text('return {status = "Fine", message = "x"}')
    assert run(luarun, "health", odd, obj, tmp_path) == {
        "status": "Unknown",
        "message": "Lua returned an invalid health status",
    }
    no_strings = tmp_path / "strings.lua"
    no_strings.write_text('return {status = string.upper("healthy")}')
    with pytest.raises(LuaError, match="string"):
        run(luarun, "health", no_strings, obj, tmp_path)
    forever = tmp_path / "forever.lua"
    forever.write_text("while true do end")
    with pytest.raises(LuaError, match="context deadline exceeded"):
        run(luarun, "health", forever, obj, tmp_path)


@pytest.mark.integration
def test_argo_cd_patches_on_the_real_api_server(
    luarun: str, tmp_path: Path, kube: Any, namespace: str, crd_installed: str
) -> None:
    """The merge patches Argo CD would send, applied to a real object: the plugin then sees the same
    request (and writes nothing), and resume really lifts the pause."""
    from kubernetes import client

    api = client.CustomObjectsApi(kube.api_client())
    coords = (names.GROUP, names.VERSION, namespace, names.PLURAL)
    case = load(Path(__file__).parent / "fixtures" / "canary-paused-at-step.json")["object"]
    body = {k: case[k] for k in ("apiVersion", "kind", "spec")}
    body["metadata"] = {"name": "churn", "annotations": case["metadata"]["annotations"]}
    api.create_namespaced_custom_object(*coords, body)
    live = api.get_namespaced_custom_object(*coords, "churn")
    api.replace_namespaced_custom_object_status(*coords, "churn", live | {"status": case["status"]})

    for name in ("pause", "promote", "resume"):
        live = api.get_namespaced_custom_object(*coords, "churn")
        patch = action(luarun, name, live, tmp_path)
        api.patch_namespaced_custom_object(*coords, "churn", patch)
    live = api.get_namespaced_custom_object(*coords, "churn")
    assert names.ANNOTATION_PAUSED not in live["metadata"]["annotations"]
    assert live["metadata"]["generation"] == 1  # spec untouched
    assert isinstance(plan("promote", live), AlreadyDone)
    assert json.loads(live["metadata"]["annotations"][names.ANNOTATION_REQUEST])["action"] == "promote"


def pruned(sent: Any, kept: Any, path: str = "status") -> list[str]:
    """Paths in `sent` that the API server dropped (it may add defaults, it must not drop fields)."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        return [p for k, v in sent.items() for p in pruned(v, kept.get(k), f"{path}.{k}")]
    if isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        return [
            p for i, (a, b) in enumerate(zip(sent, kept, strict=True)) for p in pruned(a, b, f"{path}[{i}]")
        ]
    return [] if sent == kept else [path]


@pytest.mark.integration
def test_fixtures_are_objects_the_api_server_accepts(
    luarun: str, tmp_path: Path, kube: Any, namespace: str, crd_installed: str
) -> None:
    """Each fixture's spec and status pass the CRD's schema, and the object as the API server returns
    it (managed fields, uid, timestamps added) gets the same health."""
    from kubernetes import client

    api = client.CustomObjectsApi(kube.api_client())
    coords = (names.GROUP, names.VERSION, namespace, names.PLURAL)
    for fixture in FIXTURES:
        case = load(fixture)
        obj = case["object"]
        name = fixture.stem
        body = {k: obj[k] for k in ("apiVersion", "kind", "spec")}
        body["metadata"] = {"name": name, "annotations": obj["metadata"]["annotations"]}
        api.create_namespaced_custom_object(*coords, body)
        # One spec change: generation 2, as in the fixtures.
        api.patch_namespaced_custom_object(*coords, name, {"spec": {"serving": {"replicas": 3}}})
        live = api.get_namespaced_custom_object(*coords, name)
        assert live["metadata"]["generation"] == obj["metadata"]["generation"]
        if "status" in obj:
            live = api.replace_namespaced_custom_object_status(
                *coords, name, live | {"status": obj["status"]}
            )
            assert pruned(obj["status"], live["status"]) == [], f"{name}: fields the CRD does not know"
        assert run(luarun, "health", LUA / "health.lua", live, tmp_path) == case["health"], name
