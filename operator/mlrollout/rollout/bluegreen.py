"""The blue-green strategy's step function, pure. The candidate comes up as the preview track behind a
preview Service; pre-promotion analysis; promotion (automatic after a delay, or by hand) switches
the active Service's selector at once; post-promotion analysis; the old version stays up for
scaleDownDelay, and a rollback in that window is an instant selector switch back to stable."""

from __future__ import annotations

from datetime import datetime

from mlrollout.api.base import parse_duration
from mlrollout.api.names import TRACK_PREVIEW, TRACK_STABLE
from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import RolloutStatus
from mlrollout.api.strategy import BlueGreen
from mlrollout.rollout.actions import Action, ApplyPreviewService, ApplyService, ApplyServing
from mlrollout.rollout.canary import POLL_WHILE_MOVING, Step, advance, analysis_step
from mlrollout.rollout.observed import Observed
from mlrollout.rollout.polls import ChildPoll

PREVIEW, PRE_ANALYSIS, AWAIT_PROMOTION, SWITCH, POST_ANALYSIS, SCALE_DOWN_DELAY = range(6)
STAGES = ("preview", "prePromotion", "awaitingPromotion", "switch", "postPromotion", "scaleDownDelay")


def active_track(rollout: RolloutStatus) -> str:
    """The track the active Service selects at this sub-step."""
    return TRACK_PREVIEW if (rollout.step_index or 0) >= SWITCH else TRACK_STABLE


def step(
    spec: ModelDeploymentSpec,
    bg: BlueGreen,
    rollout: RolloutStatus,
    observed: Observed,
    stable: str,
    now: datetime,
) -> Step:
    candidate = rollout.candidate
    assert candidate is not None
    index = rollout.step_index or 0
    where = f"blue-green {STAGES[min(index, SCALE_DOWN_DELAY)]}"
    active = TRACK_PREVIEW if index >= SWITCH else TRACK_STABLE
    rollout = rollout.model_copy(
        update={"strategy": "blueGreen", "desired_weight": 100 if index >= SWITCH else 0}
    )
    actions: tuple[Action, ...] = (
        ApplyServing(TRACK_PREVIEW, candidate.model_name, candidate.version, bg.preview_replicas),
        ApplyPreviewService(),
        ApplyService(selector_track=active),
    )
    preview = observed.tracks.get(TRACK_PREVIEW)
    preview_ready = (
        preview is not None
        and preview.version == candidate.version
        and preview.rolled_out
        and preview.available
    )
    if index == PREVIEW:
        if preview_ready:
            return advance(rollout, now, actions, f"{where}: preview version {candidate.version} ready")
        message = f"{where}: starting the preview"  # the preview Deployment rolling out
        return Step(rollout, actions, "moving", "PreviewStarting", message, ChildPoll(POLL_WHILE_MOVING))
    if index == PRE_ANALYSIS:
        if bg.pre_promotion_analysis is None or spec.analysis is None:
            return advance(rollout, now, actions, f"{where}: no pre-promotion analysis")
        return analysis_step(
            spec, bg.pre_promotion_analysis, "prePromotion", rollout, observed, now, actions, where
        )
    if index == AWAIT_PROMOTION:
        if not bg.auto_promotion:
            message = f"{where}: preview ready; promote by hand (kubectl mlrollout promote)"
            return Step(rollout, actions, "held", "AwaitingPromotion", message, None)
        started = rollout.step_started_at or now
        remaining = (started + parse_duration(bg.auto_promotion_delay or "0s") - now).total_seconds()
        if remaining <= 0:
            return advance(rollout, now, actions, f"{where}: promoting automatically")
        until = (started + parse_duration(bg.auto_promotion_delay or "0s")).isoformat()
        return Step(
            rollout, actions, "waiting", "AutoPromotionDelay", f"{where}: promoting at {until}", remaining
        )
    if index == SWITCH:
        if observed.active_track == TRACK_PREVIEW and preview_ready:  # the selector read back
            return advance(
                rollout,
                now,
                actions,
                f"{where}: the active Service selects version {candidate.version}",
            )
        return Step(
            rollout,
            actions,
            "moving",
            "SwitchingSelector",
            f"{where}: switching the active Service",
            ChildPoll(POLL_WHILE_MOVING),  # the Service's selector, read back
        )
    if index == POST_ANALYSIS:
        if bg.post_promotion_analysis is None or spec.analysis is None:
            return advance(rollout, now, actions, f"{where}: no post-promotion analysis")
        return analysis_step(
            spec, bg.post_promotion_analysis, "postPromotion", rollout, observed, now, actions, where
        )
    if index == SCALE_DOWN_DELAY:
        started = rollout.step_started_at or now
        remaining = (started + parse_duration(bg.scale_down_delay) - now).total_seconds()
        if remaining > 0:
            until = (started + parse_duration(bg.scale_down_delay)).isoformat()
            message = f"{where}: version {stable} kept for an instant rollback until {until}"
            return Step(rollout, actions, "waiting", "ScaleDownDelay", message, remaining)
    return Step(rollout, actions, "promote", "BlueGreenComplete", f"{where}: complete", None)
