"""The mlrollout.io/request annotation, parsed purely: JSON {"id", "action", "version"?}."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal, cast, get_args

from mlrollout.api import conditions as c
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import HistoryEntry, ModelDeploymentStatus, RolloutStatus
from mlrollout.rollout import canary
from mlrollout.rollout.actions import Action, EmitEvent, MoveAlias
from mlrollout.rollout.observed import InvalidRequest, ManualRequest, Observed, RequestAction

ID_LIMIT = 128


def parse(raw: str | None) -> ManualRequest | InvalidRequest | None:
    if raw is None or not raw.strip():
        return None
    # A broken annotation gets an id of its own text: reported once, until it changes.
    bad_id = "invalid-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
    try:
        data = json.loads(raw)
    except ValueError:
        return InvalidRequest(bad_id, "the mlrollout.io/request annotation is not JSON")
    if not isinstance(data, dict):
        return InvalidRequest(bad_id, "the mlrollout.io/request annotation must be a JSON object")
    id_, action, version = data.get("id"), data.get("action"), data.get("version")
    if not isinstance(id_, str) or not 0 < len(id_) <= ID_LIMIT:
        return InvalidRequest(bad_id, f"request id must be a string of 1..{ID_LIMIT} characters")
    if action not in get_args(RequestAction):
        return InvalidRequest(id_, f"unknown request action {str(action)[:40]!r}")
    if version is not None and not (isinstance(version, str | int) and str(version).isdigit()):
        return InvalidRequest(id_, "request version must be a version number")
    return ManualRequest(id_, cast(RequestAction, action), None if version is None else str(version))


Intent = Literal["promote-full", "abort"] | None
REQUEST_CONDITION = "Request"


def handle(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observed: Observed, now: datetime
) -> tuple[ModelDeploymentStatus, list[Action], Intent]:
    """Act once on a request id: record it, say what it did (or why it did not apply) in the
    `Request` condition and an Event. A request that does not apply moves nothing."""
    request = observed.request
    rollout = status.rollout or RolloutStatus()
    if request is None or request.id == rollout.handled_request:
        return status, [], None
    rollout = rollout.model_copy(update={"handled_request": request.id})
    actions: list[Action] = []
    intent: Intent = None
    refusal: str | None = None
    candidate = rollout.candidate
    if isinstance(request, InvalidRequest):
        refusal = request.message
    elif request.action in ("promote", "promote-full", "abort"):
        if candidate is None:
            refusal = f"{request.action}: no rollout is running"
        elif request.action == "promote":
            rollout = canary.skip_step(rollout, now)
        else:
            intent = "promote-full" if request.action == "promote-full" else "abort"
    elif request.action == "retry":
        if candidate is not None or rollout.aborted_version is None:
            refusal = "retry: no aborted or rolled-back candidate to retry"
        else:
            rollout = rollout.model_copy(update={"aborted_version": None, "last_outcome": None})
    elif request.action == "undo":
        refusal, status, actions = _undo(spec, status, request.version, candidate is not None, now)
        if refusal is None:
            rollout = rollout.model_copy(update={"aborted_version": _undone(status), "last_outcome": None})
    else:
        refusal, status = _approve(status, candidate.version if candidate else None, request)
    status = status.model_copy(update={"rollout": rollout})
    if refusal is None:
        action = request.action if isinstance(request, ManualRequest) else "?"
        text = f"request {request.id} ({action}) applied"
        actions.append(EmitEvent("Normal", "RequestApplied", text))
        flag: c.ConditionStatus = "True"
        reason = "Applied"
    else:
        text = f"request {request.id} not applied: {refusal}"
        actions.append(EmitEvent("Warning", "RequestNotApplied", text))
        flag, reason = "False", "NotApplicable"
    conditions = c.set_condition(
        status.conditions, REQUEST_CONDITION, flag, reason, text, now, observed.generation
    )
    return status.model_copy(update={"conditions": conditions}), actions, intent


def _approve(
    status: ModelDeploymentStatus, candidate: str | None, request: ManualRequest
) -> tuple[str | None, ModelDeploymentStatus]:
    """`approve`: a retrained candidate held by autoDeploy false goes on to its gates and rollout."""
    state = status.retraining
    waiting = (
        state is not None
        and state.state == "Trained"
        and state.version == candidate
        and candidate is not None
        and state.approved_by is None
    )
    if not waiting or state is None:
        return "approve: no retrained candidate is waiting for approval", status
    if request.version is not None and request.version != candidate:
        return f"approve: version {request.version} is not the candidate waiting ({candidate})", status
    approved = state.model_copy(update={"approved_by": request.id})
    return None, status.model_copy(update={"retraining": approved})


def _undone(status: ModelDeploymentStatus) -> str | None:
    """After an undo the version undone is not rolled out again by itself (a spec pinning it waits)."""
    return status.history[-2].version if len(status.history) >= 2 else None


def _undo(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    version: str | None,
    running: bool,
    now: datetime,
) -> tuple[str | None, ModelDeploymentStatus, list[Action]]:
    if running:
        return "undo: a rollout is running (abort it first)", status, []
    stable = status.stable_version
    earlier = [h.version for h in status.history if h.version != stable]
    target = version if version is not None else (earlier[-1] if earlier else None)
    if target is None:
        return "undo: no earlier version in status.history", status, []
    if target not in earlier:
        return f"undo: version {target} is not in the rollback window (status.history)", status, []
    model_name = status.model_name or spec.model.name
    history = [*status.history, HistoryEntry(version=target, promoted_at=now, cause="undo")]
    status = status.model_copy(
        update={"stable_version": target, "history": history[-spec.revision_history_limit :]}
    )
    message = f"{status.model_name}: undo from version {stable} to {target}"
    return (
        None,
        status,
        [
            MoveAlias(model_name, spec.registry.champion_alias, target),
            EmitEvent("Normal", "Undo", message),
        ],
    )
