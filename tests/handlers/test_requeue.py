"""The daemon's tick loop honours requeue_after: a requeue of 1 s acts after about 1 s, not at the
heartbeat; a change wakes it at once; no requeue waits for the heartbeat; wakes that came before a
tick started reading are absorbed by it, later ones tick again."""

from __future__ import annotations

import asyncio
import itertools
import time

from mlrollout.handlers.requeue import Wakeup, next_delay, run_ticks
from mlrollout.handlers.slots import Priority


def test_a_requeue_of_one_second_acts_within_about_a_second() -> None:
    ticks: list[float] = []

    async def main() -> None:
        wake = Wakeup()

        async def tick(_: Priority) -> tuple[float | None, int | None]:
            ticks.append(time.monotonic())
            return 1.0, wake.count

        await run_ticks(tick, wake, heartbeat=60.0, stopped=lambda: len(ticks) >= 3)

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(gaps) == 2
    assert all(0.9 <= gap < 10.0 for gap in gaps), gaps  # generous: a loaded machine, heartbeat is 60 s


def test_a_change_wakes_the_loop_before_the_heartbeat() -> None:
    ticks: list[float] = []

    async def main() -> None:
        wake = Wakeup()

        async def tick(_: Priority) -> tuple[float | None, int | None]:
            ticks.append(time.monotonic())
            if len(ticks) == 1:
                asyncio.get_running_loop().call_later(0.2, wake.set)
                return None, wake.count
            return 0.0, wake.count  # the loop looks at `stopped` again at once

        await run_ticks(tick, wake, heartbeat=60.0, stopped=lambda: len(ticks) >= 2)

    asyncio.run(main())
    assert ticks[1] - ticks[0] < 10.0


def test_wakes_before_a_tick_starts_are_absorbed_and_later_ones_tick_again() -> None:
    """A burst of child events while the tick waits for the pool: one tick, not one per event; the
    next tick is the next event's (the heartbeat is far away)."""
    ticks: list[int] = []

    async def main() -> None:
        wake = Wakeup()
        for _ in range(5):  # queued behind a burst: five events before the tick starts reading
            wake.set()

        async def tick(_: Priority) -> tuple[float | None, int | None]:
            started = wake.count
            ticks.append(started)
            if len(ticks) == 1:
                asyncio.get_running_loop().call_later(0.2, wake.set)  # a change after the read
                return None, started
            return 0.0, started  # the loop looks at `stopped` again at once

        await run_ticks(tick, wake, heartbeat=600.0, stopped=lambda: len(ticks) >= 2)

    asyncio.run(main())
    assert ticks == [5, 6]  # not [5, 5]: the five earlier events did not tick again


def test_an_unknown_start_keeps_the_wake() -> None:
    async def main() -> None:
        wake = Wakeup()
        wake.set()
        wake.settle(None)
        assert wake.event.is_set()
        wake.settle(wake.count)
        assert not wake.event.is_set()

    asyncio.run(main())


def test_next_delay() -> None:
    assert next_delay(None, 10.0) == 10.0
    assert next_delay(1.0, 10.0) == 1.0
    assert next_delay(300.0, 10.0) == 10.0
    assert next_delay(0.0, 10.0) > 0


def test_each_tick_says_why_it_runs() -> None:
    """First as the caller says; then a change, a child, a timer the rollout asked for, the resync."""
    seen: list[Priority] = []

    async def main() -> None:
        wake = Wakeup()
        loop = asyncio.get_running_loop()
        script = {
            1: lambda: loop.call_later(0.05, wake.set, Priority.CHANGE),
            2: lambda: loop.call_later(0.05, wake.set),  # a child event: DUE
        }

        async def tick(priority: Priority) -> tuple[float | None, int | None]:
            seen.append(priority)
            started = wake.count
            if len(seen) in script:
                script[len(seen)]()
                return None, started
            return (0.1 if len(seen) == 3 else None), started  # 3: a pause of 0.1 s; 4: nothing asked

        await run_ticks(tick, wake, heartbeat=0.5, stopped=lambda: len(seen) >= 5, first=Priority.CHANGE)

    asyncio.run(main())
    assert seen == [Priority.CHANGE, Priority.CHANGE, Priority.DUE, Priority.DUE, Priority.RESYNC]


def test_the_most_urgent_wake_wins_until_the_level_is_cleared() -> None:
    async def main() -> None:
        wake = Wakeup()
        wake.set(Priority.DUE)
        wake.set(Priority.CHANGE)
        wake.set(Priority.DUE)
        assert wake.priority == Priority.CHANGE
        wake.settle(wake.count)
        assert wake.priority == Priority.RESYNC

    asyncio.run(main())
