"""Load shedding (issue 7 §2): under overload a worker answers 503 with Retry-After, and what it holds
(requests in flight, requests queued for the model) stays bounded whatever the offered load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import runtime_models as models

from mlrollout.runtime.app import create_app
from mlrollout.runtime.config import Settings

ROW = {"inputs": [[0.1] * 20]}
MODEL_SECONDS = 0.02  # a model slower than the offered load


async def flood(
    rf_path: Path, cache: Path, clients: int, **limits: Any
) -> tuple[Counter[int], dict[str, Any]]:
    app = create_app(
        Settings(
            model_uri=str(rf_path),
            model_name="rf",
            model_version="1",
            trusted_types=(models.TREE,),
            cache_dir=str(cache),
            max_batch_size=4,
            max_delay_ms=0.0,
            **limits,
        )
    )
    rt = app.runtime
    await rt.startup()
    assert rt.batcher is not None
    fast = rt.batcher.predict

    def slow(batch: Any) -> Any:
        time.sleep(MODEL_SECONDS)
        return fast(batch)

    rt.batcher.predict = slow
    peak = {"in_flight": 0, "queued": 0}
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            peak["in_flight"] = max(peak["in_flight"], app.in_flight)
            peak["queued"] = max(peak["queued"], rt.batcher.queue.qsize())  # type: ignore[union-attr]
            await asyncio.sleep(0)

    retry_after: set[str | None] = set()
    codes: set[str] = set()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rt", timeout=120) as client:

        async def one() -> int:
            r = await client.post("/invocations", json=ROW)
            if r.status_code == 503:
                retry_after.add(r.headers.get("retry-after"))
                codes.add(r.json()["error_code"])
            return r.status_code

        watcher = asyncio.create_task(watch())
        statuses = Counter(await asyncio.gather(*(one() for _ in range(clients))))
        done.set()
        await watcher
        metrics = (await client.get("/metrics")).text
    await rt.shutdown()
    return statuses, {**peak, "retry_after": retry_after, "codes": codes, "metrics": metrics}


@pytest.mark.parametrize(
    ("concurrency", "queue"),
    [(40, 8), (20, 100_000)],
    ids=["the model queue is full", "too many requests in flight"],
)
def test_overload_is_shed_with_503_and_retry_after(
    rf_path: Path, tmp_path: Path, concurrency: int, queue: int
) -> None:
    statuses, seen = asyncio.run(flood(rf_path, tmp_path, 400, max_concurrency=concurrency, max_queue=queue))
    assert set(statuses) == {200, 503}, statuses  # never a 500, never a hang
    assert statuses[200] >= min(concurrency, queue)
    assert seen["retry_after"] == {"1"} and seen["codes"] == {"OVERLOADED"}
    assert seen["in_flight"] <= concurrency and seen["queued"] <= queue, seen
    assert f'code="503",model="rf",track="stable",version="1"}} {float(statuses[503])}' in seen["metrics"]


def test_held_requests_do_not_grow_with_the_offered_load(rf_path: Path, tmp_path: Path) -> None:
    small, seen_small = asyncio.run(flood(rf_path, tmp_path, 100, max_concurrency=20, max_queue=6))
    large, seen_large = asyncio.run(flood(rf_path, tmp_path, 800, max_concurrency=20, max_queue=6))
    assert large[503] > small[503]
    # Eight times the load, the same ceiling: what a worker holds is bounded by the limits alone.
    for key, limit in (("in_flight", 20), ("queued", 6)):
        assert seen_small[key] <= limit and seen_large[key] <= limit, (key, seen_small, seen_large)


def test_within_the_limits_nothing_is_shed(rf_path: Path, tmp_path: Path) -> None:
    statuses, _ = asyncio.run(flood(rf_path, tmp_path, 30, max_concurrency=64, max_queue=64))
    assert statuses == Counter({200: 30})
