"""What each plugin command asks for, decided from the object as it is (pure)."""

from __future__ import annotations

import json
from pathlib import Path
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
    running = plan("undo", CANARY)
    assert isinstance(running, Refusal) and "abort it before an undo" in running.reason


def test_undo_ids_tell_two_promotions_of_the_same_version_apart() -> None:
    """6 -> 5 undone, 6 promoted again, undone again: a new request even if history is at its limit."""
    first = json.loads(json.dumps(HEALTHY))
    first["status"]["history"] = [{"version": v, "promotedAt": f"t{v}"} for v in ("5", "6")]
    later = json.loads(json.dumps(first))
    later["status"]["history"] = [{"version": "5", "promotedAt": "t7"}, {"version": "6", "promotedAt": "t8"}]
    assert request_id("undo", first, "5") != request_id("undo", later, "5")


def test_retry_needs_an_aborted_version_and_no_rollout_running() -> None:
    assert isinstance(plan("retry", CANARY), Refusal)
    rolled_back = json.loads(json.dumps(HEALTHY))
    rolled_back["status"]["rollout"] = {"abortedVersion": "7", "handledRequest": "abort-v7-s2-T"}
    patch = plan("retry", rolled_back)
    assert isinstance(patch, Patch) and request_of(patch) == {"id": "retry-v7-a", "action": "retry"}
    busy = json.loads(json.dumps(CANARY))
    busy["status"]["rollout"]["abortedVersion"] = "6"
    refused = plan("retry", busy)
    assert isinstance(refused, Refusal) and "abort it before retrying" in refused.reason


def test_retry_after_a_handled_retry_is_a_new_request() -> None:
    again = json.loads(json.dumps(HEALTHY))
    again["status"]["rollout"] = {"abortedVersion": "7", "handledRequest": "retry-v7-a"}
    patch = plan("retry", again)
    assert isinstance(patch, Patch) and request_of(patch)["id"] == "retry-v7-b"


def test_a_request_the_operator_handled_is_reported_not_rewritten() -> None:
    handled = json.loads(json.dumps(CANARY))
    rid = request_id("promote", handled)
    handled["status"]["rollout"]["handledRequest"] = rid
    done = plan("promote", handled)
    assert isinstance(done, AlreadyDone) and "applied by the operator" in done.summary
    handled["status"]["conditions"] = [
        {
            "type": "Request",
            "status": "False",
            "reason": "NotApplicable",
            "message": f"request {rid} not applied: x",
        }
    ]
    refused = plan("promote", handled)
    assert (
        isinstance(refused, Refusal) and "did not apply promote" in refused.reason and "x" in refused.reason
    )


def test_promote_waits_for_the_gate() -> None:
    validating = json.loads(json.dumps(CANARY))
    validating["status"]["phase"] = "Validating"
    refused = plan("promote", validating)
    assert isinstance(refused, Refusal) and "validation gate" in refused.reason
    assert isinstance(plan("abort", validating), Patch)


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
    assert isinstance(plan("resume", CANARY), AlreadyDone)  # resuming twice is fine, like pausing twice
    tidied = plan("resume", annotated(CANARY, **{names.ANNOTATION_PAUSED: "false"}))
    assert isinstance(tidied, Patch) and tidied.annotations == {names.ANNOTATION_PAUSED: None}


def test_render_status_and_history() -> None:
    text = render.status_text(CANARY)
    assert "Candidate:   7 (-)" in text and "stable 75%, canary 25%" in text
    assert render.summary(CANARY) == "phase=Progressing stable=6 candidate=7 step=2 weight=25%"
    history = render.history_text(
        HEALTHY, {"6": {"mlrollout.gate": "passed", "mlrollout.rollout": "promoted", "other": "x"}}
    )
    assert history.splitlines() == [
        "WHEN  EVENT            VERSION  CAUSE",
        "t     promoted         6        -",
        "",
        "version 6 (stable): promoted t cause -",
        "    mlrollout.gate = passed",
        "    mlrollout.rollout = promoted",
    ]
    assert "registry not reached" in render.history_text(HEALTHY, None)


def test_history_shows_a_rejection_at_the_gate_with_its_numbers() -> None:
    check = {"name": "metric:roc_auc", "verdict": "failed", "value": 0.7123, "threshold": 0.84}
    rejected = {
        **HEALTHY,
        "status": {
            **HEALTHY["status"],
            "rollout": {
                "abortedVersion": "7",
                "lastOutcome": "version 7 rejected at the gate: metric:roc_auc = 0.7123 (threshold 0.84)",
                "gate": {
                    "version": "7",
                    "job": "churn-gate-7-1",
                    "attempt": 1,
                    "phase": "Failed",
                    "checks": [check],
                },
            },
        },
    }
    report = json.dumps({"outcome": "failed", "checks": [check] * 5})
    tags = {
        "7": {"mlrollout.gate": "failed", "mlrollout.gate.report": report, "mlrollout.rollout": "rejected"}
    }
    assert render.history_text(rejected, tags).splitlines()[:11] == [
        "WHEN  EVENT            VERSION  CAUSE",
        "-     rejected         7        "
        "version 7 rejected at the gate: metric:roc_auc = 0.7123 (threshold 0.84)",
        "t     promoted         6        -",
        "",
        "version 7 (not promoted): version 7 rejected at the gate: metric:roc_auc = 0.7123 (threshold 0.84)",
        "    gate: Failed (attempt 1, job churn-gate-7-1)",
        "      metric:roc_auc: failed value=0.7123 threshold=0.84",
        "    mlrollout.gate = failed",
        f"    mlrollout.gate.report = {report[:117]}...",
        "    mlrollout.rollout = rejected",
        "version 6 (stable): promoted t cause -",
    ]


FIXTURES = sorted((Path(__file__).parents[1] / "argocd" / "fixtures").glob("*.json"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_render_every_operator_state(fixture: Path) -> None:
    obj = json.loads(fixture.read_text())["object"]
    status = obj.get("status") or {}
    text = render.status_text(obj)
    assert f"Phase:       {status.get('phase', '-')}" in text
    assert render.summary(obj).startswith(f"phase={status.get('phase', '-')}")
    for condition in status.get("conditions") or []:
        assert f"{condition['type']}={condition['status']} {condition['reason']}" in text
    for tally in ((status.get("rollout") or {}).get("analysis") or {}).get("tallies") or []:
        assert f"{tally['metric']}: pass {tally['passed']}" in text
    assert render.history_text(obj, None).endswith("(registry not reached: MLflow tags not shown)")
