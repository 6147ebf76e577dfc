"""What each plugin command asks of the operator, decided from the object as it is now (pure).

Manual actions travel as the `mlrollout.io/request` annotation, `{"id", "action", "version"}`; the
operator acts once per id and records it in status.rollout.handledRequest. Ids are derived from the
situation they act on (candidate version, step and when it started; the stable version and when it
was promoted), so running the same command twice, or the plugin and an Argo CD action at once,
writes one id and the operator acts once; Argo CD's Lua actions derive them the same way, with
nothing but comparisons and `..` (they run without Lua's string library). Pause and resume are the
level-triggered `mlrollout.io/paused` annotation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlrollout.api import names

# The operator's limit on a request id, and the condition in which it says what it did with one.
ID_LIMIT = 128
REQUEST_CONDITION = "Request"


@dataclass(frozen=True)
class Patch:
    """A metadata merge patch and the sentence that says what it changes."""

    annotations: Mapping[str, str | None]
    summary: str
    request_id: str | None = None


@dataclass(frozen=True)
class AlreadyDone:
    """The object already carries this request/state: nothing to write, success."""

    summary: str
    request_id: str | None = None


@dataclass(frozen=True)
class Refusal:
    """The action does not apply to the object as it is: nothing written, non-zero exit."""

    reason: str


Plan = Patch | AlreadyDone | Refusal


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    found = _get(obj, "metadata", "annotations")
    return found if isinstance(found, Mapping) else {}


def request_id(action: str, obj: Mapping[str, Any], version: str | None = None) -> str:
    """The id for `action` in the object's present situation (the same in Argo CD's Lua actions)."""
    rollout = _get(obj, "status", "rollout") or {}
    candidate = _get(rollout, "candidate", "version")
    if action in {"promote", "promote-full", "abort"}:
        step = rollout.get("stepIndex")
        started = rollout.get("stepStartedAt") or ""
        return f"{action}-v{candidate}-s{'' if step is None else step}-{started}"
    if action == "approve":
        return f"approve-v{candidate}"
    if action == "retry":
        # Nothing in status tells one rollback of a version from the next, so the id alternates
        # between two values: always different from the request handled last, never growing.
        aborted = rollout.get("abortedVersion")
        first = f"retry-v{aborted}-a"
        return f"retry-v{aborted}-b" if rollout.get("handledRequest") == first else first
    # undo: from this stable version, as promoted at this time
    history = _get(obj, "status", "history") or []
    promoted = history[-1].get("promotedAt") if history and isinstance(history[-1], Mapping) else None
    stable = _get(obj, "status", "stableVersion")
    return f"undo-v{version}-from-v{stable}-{promoted or ''}"


def _request_condition(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in _get(obj, "status", "conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == REQUEST_CONDITION:
            return condition
    return {}


def outcome(action: str, obj: Mapping[str, Any], rid: str) -> AlreadyDone | Refusal | None:
    """What the operator did with request `rid`, from its `Request` condition; None: not acted on yet."""
    if _get(obj, "status", "rollout", "handledRequest") != rid:
        return None
    condition = _request_condition(obj)
    if condition.get("status") == "False":
        return Refusal(f"the operator did not apply {action} (request {rid}): {condition.get('message')}")
    return AlreadyDone(f"{action} applied by the operator (request {rid})", rid)


def _request(action: str, obj: Mapping[str, Any], summary: str, version: str | None = None) -> Plan:
    rid = request_id(action, obj, version)[:ID_LIMIT]
    handled = outcome(action, obj, rid)
    if handled is not None:
        return handled
    current = _annotations(obj).get(names.ANNOTATION_REQUEST)
    if current:
        try:
            if json.loads(current).get("id") == rid:
                return AlreadyDone(f"{action} already requested (id {rid}); waiting for the operator", rid)
        except (ValueError, AttributeError):
            pass  # an unreadable annotation is simply replaced
    body: dict[str, str] = {"id": rid, "action": action}
    if version is not None:
        body["version"] = version
    return Patch({names.ANNOTATION_REQUEST: json.dumps(body, separators=(",", ":"))}, summary, rid)


def plan(action: str, obj: Mapping[str, Any], to_version: str | None = None) -> Plan:
    """The patch for one plugin action, or why it does not apply."""
    name = _get(obj, "metadata", "name")
    status = obj.get("status") or {}
    rollout = status.get("rollout") or {}
    candidate = _get(rollout, "candidate", "version")
    paused = _annotations(obj).get(names.ANNOTATION_PAUSED, "").lower() == "true"
    if action == "pause":
        if paused:
            return AlreadyDone(f"{name} is already paused")
        return Patch({names.ANNOTATION_PAUSED: "true"}, f"{name} paused: the operator holds every change")
    if action == "resume":
        if names.ANNOTATION_PAUSED not in _annotations(obj):
            return AlreadyDone(f"{name} is not paused: nothing to resume")
        if not paused:  # e.g. "false" from an older tool: tidy it away
            return Patch(
                {names.ANNOTATION_PAUSED: None}, f"{name} was not paused; removed {names.ANNOTATION_PAUSED}"
            )
        return Patch({names.ANNOTATION_PAUSED: None}, f"{name} resumed")
    if action in {"promote", "promote-full", "abort"}:
        if candidate is None:
            return Refusal(f"{name} has no rollout in progress: nothing to {action.replace('-full', '')}")
        if action != "abort" and status.get("phase") == "Validating":
            return Refusal(
                f"{name}: version {candidate} is still in its validation gate; promote once it rolls out"
            )
        what = {
            "promote": f"promote version {candidate} past step {rollout.get('stepIndex', 0)}",
            "promote-full": f"promote version {candidate} to 100% now, skipping the remaining steps",
            "abort": f"abort the rollout of version {candidate}: all traffic back to stable",
        }[action]
        return _request(action, obj, f"{name}: {what}")
    if action == "retry":
        aborted = rollout.get("abortedVersion")
        if aborted is None:
            return Refusal(f"{name} has no aborted or rolled-back version to retry")
        if candidate is not None:
            return Refusal(f"{name} is rolling out version {candidate}: abort it before retrying {aborted}")
        return _request("retry", obj, f"{name}: retry the rollout of version {aborted}")
    if action == "approve":
        if candidate is None or not _awaiting_approval(status):
            return Refusal(f"{name} has no candidate waiting for approval")
        return _request("approve", obj, f"{name}: approve version {candidate} for its gates and rollout")
    if action == "undo":
        return _undo(obj, status, to_version)
    raise ValueError(f"unknown action {action!r}")


def _undo(obj: Mapping[str, Any], status: Mapping[str, Any], to_version: str | None) -> Plan:
    name = _get(obj, "metadata", "name")
    stable = status.get("stableVersion")
    candidate = _get(status, "rollout", "candidate", "version")
    if candidate is not None:
        return Refusal(f"{name} is rolling out version {candidate}: abort it before an undo")
    promoted = [str(h.get("version")) for h in status.get("history") or [] if isinstance(h, Mapping)]
    earlier = [v for v in promoted if v != stable]
    if to_version is None:
        if not earlier:
            return Refusal(f"{name} has no earlier promoted version to go back to (history: {promoted})")
        to_version = earlier[-1]
    elif to_version not in earlier:
        return Refusal(
            f"{name}: version {to_version} is not an earlier promoted version "
            f"(rollback window: {earlier or 'empty'})"
        )
    return _request("undo", obj, f"{name}: roll back from version {stable} to {to_version}", to_version)


def _awaiting_approval(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("reason") == "AwaitingApproval" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
