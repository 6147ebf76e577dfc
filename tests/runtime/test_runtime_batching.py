"""Micro-batching: concurrent requests share model calls; one bad request does not fail the others."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from mlrollout.runtime.batching import MicroBatcher
from mlrollout.runtime.schema import Batch, InputError


def one(v: float) -> Batch:
    return Batch(n=1, array=np.array([[v]]))


def slow_double(calls: list[int]) -> Any:
    def predict(b: Batch) -> np.ndarray[Any, Any]:
        assert b.array is not None
        calls.append(b.n)
        if (b.array < 0).any():
            raise InputError("negative")
        time.sleep(0.01)
        return b.array[:, 0] * 2

    return predict


def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        mb = MicroBatcher(slow_double(calls), max_batch_size=8, max_delay_ms=5)
        out = await asyncio.gather(*[mb.submit(one(i)) for i in range(20)])
        await mb.stop()
        return [o.tolist() for o in out]

    assert asyncio.run(main()) == [[2.0 * i] for i in range(20)]
    assert max(calls) == 8 and sum(calls) == 20 and len(calls) <= 4


def test_a_lone_client_does_not_wait() -> None:
    async def main() -> float:
        mb = MicroBatcher(lambda b: b.array[:, 0], max_batch_size=64, max_delay_ms=200)  # type: ignore[index]
        t0 = time.perf_counter()
        for i in range(5):
            await mb.submit(one(i))
        await mb.stop()
        return time.perf_counter() - t0

    assert asyncio.run(main()) < 0.5  # five calls, far less than 5 x 200 ms


def test_one_bad_request_fails_alone() -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        mb = MicroBatcher(slow_double(calls), max_batch_size=16, max_delay_ms=5)
        res = await asyncio.gather(*[mb.submit(one(v)) for v in (1, -1, 2)], return_exceptions=True)
        await mb.stop()
        return res

    a, b, c = asyncio.run(main())
    assert a.tolist() == [2.0] and c.tolist() == [4.0]
    assert isinstance(b, InputError)


def test_reconfigure_live() -> None:
    mb = MicroBatcher(lambda b: b.array, max_batch_size=4, max_delay_ms=1)  # type: ignore[arg-type,return-value]
    mb.configure(0, -5)
    assert mb.max_batch_size == 1 and mb.max_delay == 0.0


@pytest.mark.parametrize("n", [1, 7])
def test_predict_runs_off_the_event_loop(n: int) -> None:
    loop_threads: set[int] = set()
    predict_threads: set[int] = set()

    def predict(b: Batch) -> np.ndarray[Any, Any]:
        predict_threads.add(threading.get_ident())
        return np.zeros(b.n)

    async def main() -> None:
        loop_threads.add(threading.get_ident())
        mb = MicroBatcher(predict)
        await asyncio.gather(*[mb.submit(one(i)) for i in range(n)])
        await mb.stop()

    asyncio.run(main())
    assert predict_threads and not (predict_threads & loop_threads)
