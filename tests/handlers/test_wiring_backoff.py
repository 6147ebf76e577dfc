"""A reconcile that meets an API error (429 from an overloaded API server, a dropped connection)
backs off: exponentially per object, at least the server's Retry-After, with a log line saying why;
the first success resets it. The reconcile itself is replaced here: what is tested is the wiring."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import pytest
import urllib3
from kubernetes import client

from mlrollout.api.status import Phase
from mlrollout.handlers import wiring
from mlrollout.reconcile import Outcome
from mlrollout.rollout.polls import ChildPoll

RAW = {"metadata": {"name": "churn", "namespace": "ml", "uid": "u-backoff"}, "status": {"phase": "Healthy"}}


def throttled(retry_after: str | None) -> client.ApiException:
    error = client.ApiException(status=429, reason="Too Many Requests")
    error.headers = {"Retry-After": retry_after} if retry_after else {}
    error.body = '{"message": "Too many requests, please try again later."}'
    return error


def tick(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> Outcome | None:
    def fake_reconcile(body: Any, world: Any) -> Outcome:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    monkeypatch.setattr(wiring, "reconcile", fake_reconcile)
    monkeypatch.setattr(wiring, "world", lambda: None)
    monkeypatch.setattr(wiring, "_fresh_world", lambda: None)  # an object's first tick reads afresh
    return asyncio.run(wiring._tick(kopf.Body(RAW), logging.getLogger("test")))  # type: ignore[arg-type]


def test_429_backs_off_at_least_retry_after_and_grows_then_resets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wiring._failures.pop("u-backoff", None)
    with caplog.at_level(logging.WARNING):
        first = tick(monkeypatch, throttled("3"))
    assert first is not None and first.requeue_after is not None and first.requeue_after >= 3
    assert first.phase == Phase.HEALTHY and not first.acted
    assert (
        "API error 429 Too Many Requests: Too many requests" in caplog.text and "backing off" in caplog.text
    )
    delays = [tick(monkeypatch, throttled(None)).requeue_after for _ in range(6)]  # type: ignore[union-attr]
    assert delays[-1] is not None and delays[-1] >= 16  # 2^5 * base, halved at worst by the jitter
    assert wiring._failures["u-backoff"] == 7
    done = tick(monkeypatch, Outcome(Phase.HEALTHY, None, acted=True))
    assert done is not None and done.requeue_after is None
    assert "u-backoff" not in wiring._failures


def test_an_unreachable_api_server_backs_off_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wiring._failures.pop("u-backoff", None)
    with caplog.at_level(logging.WARNING):
        outcome = tick(monkeypatch, urllib3.exceptions.ProtocolError("Connection aborted."))
    assert outcome is not None and outcome.requeue_after is not None and outcome.requeue_after >= 0.5
    assert "API server unreachable" in caplog.text


def test_a_conflict_retries_on_the_next_tick_without_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    wiring._failures.pop("u-backoff", None)
    assert tick(monkeypatch, client.ApiException(status=409, reason="Conflict")) is None
    assert "u-backoff" not in wiring._failures


def test_polls_that_only_wait_for_watched_children_become_a_safety_net() -> None:
    """A Deployment rolling out wakes the reconcile by its own events: no 2 s poll while watched.
    A pause of the same length is time itself and keeps its timer; so does everything unwatched."""

    def outcome(requeue: float | None) -> Outcome:
        return Outcome(phase=Phase.PROGRESSING, requeue_after=requeue, acted=True)

    assert wiring.requeue_of(outcome(ChildPoll(2.0)), children_watched=True) == wiring.CHILD_POLL_WHEN_WATCHED
    assert wiring.requeue_of(outcome(ChildPoll(2.0)), children_watched=False) == 2.0
    assert wiring.requeue_of(outcome(2.0), children_watched=True) == 2.0  # a pause of 2 s
    assert wiring.requeue_of(outcome(None), children_watched=True) is None
    assert wiring.requeue_of(None, children_watched=True) == 1.0


def test_an_objects_first_tick_reads_the_api_server_and_later_ones_the_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No reconcile acts on a copy of the children that is still being listed (operator start)."""
    worlds: list[str] = []

    def fake_reconcile(body: Any, world: str) -> Outcome:
        worlds.append(world)
        return Outcome(Phase.HEALTHY, None, acted=False)

    monkeypatch.setattr(wiring, "reconcile", fake_reconcile)
    monkeypatch.setattr(wiring, "world", lambda: "copy")
    monkeypatch.setattr(wiring, "_fresh_world", lambda: "api server")
    raw = RAW | {"metadata": RAW["metadata"] | {"uid": "u-first"}}
    wiring._fresh_at.pop("u-first", None)
    for _ in range(2):
        asyncio.run(wiring._tick(kopf.Body(raw), logging.getLogger("test")))  # type: ignore[arg-type]
    assert worlds == ["api server", "copy"]
