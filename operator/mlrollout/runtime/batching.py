"""Adaptive micro-batching: concurrent requests of one worker share a single model call.

Requests that queue while the model runs are taken together with no extra wait. The batcher waits
(at most max_delay) for more rows only when recent batches show concurrency, so a lone client
never pays the delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlrollout.runtime.schema import Batch, InputError, concat

PredictFn = Callable[[Batch], np.ndarray[Any, Any]]


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = 32,
        max_delay_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int = 128,
    ) -> None:
        self.predict = predict
        self.max_queue = max(1, max_queue)
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.on_batch = on_batch
        self.queue: asyncio.Queue[tuple[Batch, asyncio.Future[np.ndarray[Any, Any]]]] = asyncio.Queue()
        # One thread: model calls of a worker run one at a time, and the event loop stays free.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.avg_requests = 1.0  # moving average of requests per batch
        self._task: asyncio.Task[None] | None = None

    def configure(self, max_batch_size: int, max_delay_ms: float) -> None:
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay = max(0.0, max_delay_ms / 1000.0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.pool.shutdown(wait=False)

    async def submit(self, batch: Batch) -> np.ndarray[Any, Any]:
        if self.queue.qsize() >= self.max_queue:
            # The model is behind: refuse now rather than queue without bound (memory, latency).
            raise InputError(
                f"overloaded: {self.queue.qsize()} requests already wait for the model; retry later",
                status=503,
                code="OVERLOADED",
            )
        fut: asyncio.Future[np.ndarray[Any, Any]] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((batch, fut))
        if self._task is None:
            self.start()
        return await fut

    async def _collect(self) -> list[tuple[Batch, asyncio.Future[np.ndarray[Any, Any]]]]:
        items = [await self.queue.get()]
        rows = items[0][0].n
        while rows < self.max_batch_size and not self.queue.empty():
            item = self.queue.get_nowait()
            items.append(item)
            rows += item[0].n
        target = min(self.max_batch_size, math.ceil(self.avg_requests))
        if self.max_delay > 0 and len(items) < target:
            deadline = time.monotonic() + self.max_delay
            while rows < self.max_batch_size and len(items) < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
                items.append(item)
                rows += item[0].n
        self.avg_requests = 0.8 * self.avg_requests + 0.2 * len(items)
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            items = [it for it in items if not it[1].done()]
            if not items:
                continue
            batches = [b for b, _ in items]
            try:
                out = await loop.run_in_executor(self.pool, self.predict, concat(batches))
            except Exception as exc:
                if len(items) == 1:
                    _fail(items[0][1], exc)
                    continue
                # One bad request must not fail its neighbours: retry each alone.
                for b, fut in items:
                    try:
                        res = await loop.run_in_executor(self.pool, self.predict, b)
                    except Exception as one_exc:
                        _fail(fut, one_exc)
                        continue
                    if not fut.done():
                        fut.set_result(res)
                continue
            if self.on_batch is not None:
                self.on_batch(int(out.shape[0]))
            start = 0
            for b, fut in items:
                if not fut.done():
                    fut.set_result(out[start : start + b.n])
                start += b.n


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
