"""The per-object tick loop behind the Kopf daemon: tick, then sleep min(requeue_after, heartbeat),
woken early by a change. This is how pauses, analysis intervals and backoff fire when due."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mlrollout.handlers.slots import Priority

MIN_DELAY = 0.05  # a "tick again now" still yields to the event loop


class Wakeup:
    """A level with a count. A tick reports the count it started reading the world at; the wakes
    counted before that are covered by what it read, so a tick queued behind a burst absorbs every
    event that came in meanwhile instead of running once more for each."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.count = 0
        self.priority = Priority.RESYNC  # the most urgent wake since the level was last cleared

    def set(self, priority: Priority = Priority.DUE) -> None:
        self.count += 1
        self.priority = min(self.priority, priority)
        self.event.set()

    def settle(self, started_at: int | None) -> None:
        """After a tick: stay set only for wakes that came after it started (None: unknown, stay set
        if set)."""
        if started_at is not None and self.count == started_at:
            self.event.clear()
            self.priority = Priority.RESYNC


def next_delay(requeue_after: float | None, heartbeat: float) -> float:
    if requeue_after is None:
        return heartbeat
    return max(min(requeue_after, heartbeat), MIN_DELAY)


async def run_ticks(
    tick: Callable[[Priority], Awaitable[tuple[float | None, int | None]]],
    wake: Wakeup,
    heartbeat: float,
    stopped: Callable[[], bool],
    first: Priority = Priority.RESYNC,
) -> None:
    """`tick(priority)` returns (requeue_after, the wake count when it started reading). The
    priority says why it runs: the most urgent wake, a timer the rollout asked for, or the resync."""
    priority = first
    while not stopped():
        requeue_after, started_at = await tick(priority)
        wake.settle(started_at)
        try:
            await asyncio.wait_for(wake.event.wait(), timeout=next_delay(requeue_after, heartbeat))
            priority = wake.priority
        except TimeoutError:
            asked = requeue_after is not None and requeue_after < heartbeat
            priority = Priority.DUE if asked else Priority.RESYNC
