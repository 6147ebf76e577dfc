"""The per-object tick loop behind the Kopf daemon: tick, then sleep min(requeue_after, heartbeat),
woken early by a change. This is how pauses, analysis intervals and backoff fire when due."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

MIN_DELAY = 0.05  # a "tick again now" still yields to the event loop


def next_delay(requeue_after: float | None, heartbeat: float) -> float:
    if requeue_after is None:
        return heartbeat
    return max(min(requeue_after, heartbeat), MIN_DELAY)


async def run_ticks(
    tick: Callable[[], Awaitable[float | None]],
    wake: asyncio.Event,
    heartbeat: float,
    stopped: Callable[[], bool],
) -> None:
    while not stopped():
        wake.clear()  # a change during the tick sets it again: the next wait returns at once
        requeue_after = await tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=next_delay(requeue_after, heartbeat))
