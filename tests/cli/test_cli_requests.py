"""What each plugin command asks for, decided from the object as it is (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlrollout.api import names
from mlrollout.cli import render
from mlrollout.cli.requests import AlreadyDone, Patch, Refusal, plan, request_id

CANARY: dict[str, Any] = {
    "metadata": {"name": "churn", "namespace": "ml"},
    "status": {
        "phase": "Progressing",
        "stableVersion": "6",
        "history": [{"version": "5", "promotedAt": "t"}, {"version": "6", "promotedAt": "t"}],
        "rollout": {
            "candidate": {"modelName": "churn", "version": "7"},
            "stepIndex": 2,
            "stepStartedAt": "T",
        },
        "weights": {"stable": 75, "canary": 25},
    },
}
HEALTHY: dict[str, Any] = {
    "metadata": {"name": "churn"},
    "status": {"phase": "Healthy", "stableVersion": "6", "history": [{"version": "6", "promotedAt": "t"}]},
}


def annotated(obj: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


def request_of(p: Patch) -> dict[str, str]:
    value = p.annotations[names.ANNOTATION_REQUEST]
    assert value is not None
    loaded: dict[str, str] = json.loads(value)
    return loaded


@pytest.mark.parametrize("action", ["promote", "promote-full", "abort"])
def test_rollout_actions_need_a_candidate(action: str) -> None:
    refused = plan(action, HEALTHY)
    assert isinstance(refused, Refusal) and "no rollout in progress" in refused.reason
    patch = plan(action, CANARY)
    assert isinstance(patch, Patch)
    assert request_of(patch) == {"id": request_id(action, CANARY), "action": action}
    assert "7" in patch.summary


def test_the_same_command_twice_is_one_request() -> None:
    first = plan("promote", CANARY)
    assert isinstance(first, Patch)
    again = plan("promote", annotated(CANARY, **{k: v for k, v in first.annotations.items() if v}))
    assert isinstance(again, AlreadyDone)


def test_a_new_step_makes_a_new_request() -> None:
    moved = json.loads(json.dumps(CANARY))
    moved["status"]["rollout"] |= {"stepIndex": 3, "stepStartedAt": "T2"}
    assert request_id("promote", moved) != request_id("promote", CANARY)


def test_undo_goes_to_the_previous_promoted_version_or_one_named() -> None:
    healthy = json.loads(json.dumps(HEALTHY))
    healthy["status"]["history"] = [{"version": v, "promotedAt": "t"} for v in ("4", "5", "6")]
    patch = plan("undo", healthy)
    assert isinstance(patch, Patch) and request_of(patch)["version"] == "5"
    named = plan("undo", healthy, "4")
    assert isinstance(named, Patch) and request_of(named)["version"] == "4"
    for bad in ("6", "9"):
        refused = plan("undo", healthy, bad)
        assert isinstance(refused, Refusal) and "rollback window" in refused.reason
    lonely = plan("undo", HEALTHY)
    assert isinstance(lonely, Refusal) and "no earlier promoted version" in lonely.reason


def test_retry_needs_an_aborted_version() -> None:
    assert isinstance(plan("retry", CANARY), Refusal)
    rolled_back = json.loads(json.dumps(HEALTHY))
    rolled_back["status"]["rollout"] = {"abortedVersion": "7", "handledRequest": "abort-v7-s2-T"}
    patch = plan("retry", rolled_back)
    assert isinstance(patch, Patch) and request_of(patch)["action"] == "retry"


def test_approve_needs_a_candidate_awaiting_approval() -> None:
    assert isinstance(plan("approve", CANARY), Refusal)
    waiting = json.loads(json.dumps(CANARY))
    waiting["status"]["conditions"] = [
        {"type": "Progressing", "status": "True", "reason": "AwaitingApproval"}
    ]
    assert isinstance(plan("approve", waiting), Patch)


def test_pause_and_resume() -> None:
    paused = plan("pause", CANARY)
    assert isinstance(paused, Patch) and paused.annotations == {names.ANNOTATION_PAUSED: "true"}
    now_paused = annotated(CANARY, **{names.ANNOTATION_PAUSED: "true"})
    assert isinstance(plan("pause", now_paused), AlreadyDone)
    resumed = plan("resume", now_paused)
    assert isinstance(resumed, Patch) and resumed.annotations == {names.ANNOTATION_PAUSED: None}
    assert isinstance(plan("resume", CANARY), Refusal)


def test_render_status_and_history() -> None:
    text = render.status_text(CANARY)
    assert "Candidate:   7 (-)" in text and "stable 75%, canary 25%" in text
    assert render.summary(CANARY) == "phase=Progressing stable=6 candidate=7 step=2 weight=25%"
    history = render.history_text(
        HEALTHY, {"6": {"mlrollout.gate": "passed", "mlrollout.rollout": "promoted", "other": "x"}}
    )
    assert history.splitlines() == [
        "version 6 (stable): promoted t cause -",
        "    mlrollout.gate = passed",
        "    mlrollout.rollout = promoted",
    ]
    assert "registry not reached" in render.history_text(HEALTHY, None)
