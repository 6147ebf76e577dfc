"""Reconcile slots: a bounded number at once, changed objects before resyncs, FIFO within a
priority, a waiter bumped when its object changes, a cancelled waiter leaves no hole."""

from __future__ import annotations

import asyncio

import pytest

from mlrollout.handlers.slots import Priority, PrioritySlots


async def _hold(
    slots: PrioritySlots, key: str, priority: Priority, order: list[str], gate: asyncio.Event
) -> None:
    async with slots.slot(key, priority):
        order.append(key)
        await gate.wait()


def test_at_most_limit_run_and_a_change_goes_before_the_resyncs_queued_ahead_of_it() -> None:
    order: list[str] = []

    async def main() -> None:
        slots = PrioritySlots(2)
        gate = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, f"r{i}", Priority.RESYNC, order, gate)) for i in range(5)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(_hold(slots, "changed", Priority.CHANGE, order, gate)))
        tasks.append(asyncio.create_task(_hold(slots, "child", Priority.DUE, order, gate)))
        await asyncio.sleep(0.01)
        assert (slots.running, slots.waiting()) == (2, 5)
        gate.set()
        await asyncio.gather(*tasks)
        assert slots.running == 0 and slots.waiting() == 0

    asyncio.run(main())
    assert order == ["r0", "r1", "changed", "child", "r2", "r3", "r4"]


def test_a_waiter_whose_object_changes_is_bumped_ahead() -> None:
    order: list[str] = []

    async def main() -> None:
        slots = PrioritySlots(1)
        gate = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, f"r{i}", Priority.RESYNC, order, gate)) for i in range(4)]
        await asyncio.sleep(0.01)
        slots.bump("r3", Priority.CHANGE)
        slots.bump("r3", Priority.RESYNC)  # never less urgent
        slots.bump("gone", Priority.CHANGE)  # not waiting: nothing
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["r0", "r3", "r1", "r2"]


def test_a_cancelled_waiter_leaves_no_hole() -> None:
    order: list[str] = []

    async def main() -> None:
        slots = PrioritySlots(1)
        gate = asyncio.Event()
        first = asyncio.create_task(_hold(slots, "a", Priority.RESYNC, order, gate))
        cancelled = asyncio.create_task(_hold(slots, "b", Priority.CHANGE, order, gate))
        last = asyncio.create_task(_hold(slots, "c", Priority.RESYNC, order, gate))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, last)
        assert slots.running == 0 and slots.waiting() == 0

    asyncio.run(main())
    assert order == ["a", "c"]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PrioritySlots(0)
