"""The daemon's tick loop honours requeue_after: a requeue of 1 s acts after about 1 s, not at the
heartbeat; a change wakes it at once; no requeue waits for the heartbeat."""

from __future__ import annotations

import asyncio
import itertools
import time

from mlrollout.handlers.requeue import next_delay, run_ticks


def test_a_requeue_of_one_second_acts_within_about_a_second() -> None:
    ticks: list[float] = []

    async def main() -> None:
        wake = asyncio.Event()

        async def tick() -> float | None:
            ticks.append(time.monotonic())
            return 1.0

        await run_ticks(tick, wake, heartbeat=60.0, stopped=lambda: len(ticks) >= 3)

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(gaps) == 2
    assert all(0.9 <= gap < 10.0 for gap in gaps), gaps  # generous: a loaded machine, heartbeat is 60 s


def test_a_change_wakes_the_loop_before_the_heartbeat() -> None:
    ticks: list[float] = []

    async def main() -> None:
        wake = asyncio.Event()

        async def tick() -> float | None:
            ticks.append(time.monotonic())
            if len(ticks) == 1:
                asyncio.get_running_loop().call_later(0.2, wake.set)
            return None

        await run_ticks(tick, wake, heartbeat=60.0, stopped=lambda: len(ticks) >= 2)

    asyncio.run(main())
    assert ticks[1] - ticks[0] < 10.0


def test_next_delay() -> None:
    assert next_delay(None, 10.0) == 10.0
    assert next_delay(1.0, 10.0) == 1.0
    assert next_delay(300.0, 10.0) == 10.0
    assert next_delay(0.0, 10.0) > 0
