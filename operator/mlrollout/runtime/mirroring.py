"""Shadow mirroring: send a share of requests to a shadow endpoint, after and apart from the answer.

The caller only gets the primary answer: the mirror call is a detached task (not a response
background task, which would hold the keep-alive connection), bounded in flight, with a timeout.
Agreement and shadow latency go to metrics; the shadow's predictions go to the inference log under
the same request id.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

MIRRORED_HEADER = "x-mlrollout-mirrored"
REQUEST_ID_HEADER = "x-request-id"

# result: "ok" | "error" | "dropped"; shadow_predictions or None; seconds; why an error is one
# (ERROR_REASONS, "" otherwise)
Report = Callable[[str, list[Any], list[Any] | None, float, str], None]
# Bounded label values: a shadow's error rate is only actionable once its cause is known (a shadow
# too slow for mirrorTimeout is not a shadow that fails).
ERROR_REASONS = ("timeout", "connect", "http_4xx", "http_5xx", "invalid", "other")


def agree(a: Any, b: Any, relative_tolerance: float = 1e-6) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=relative_tolerance, abs_tol=1e-9)
    return bool(a == b) or str(a) == str(b)


class Mirror:
    def __init__(self, max_in_flight: int = 64) -> None:
        self.url = ""
        self.fraction = 0.0
        self.timeout = 1.0
        self.relative_tolerance = 1e-6
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def configure(
        self, url: str, fraction: float, timeout_ms: float, relative_tolerance: float = 1e-6
    ) -> None:
        self.url = url.rstrip("/")
        self.fraction = fraction if url else 0.0
        self.timeout = max(0.001, timeout_ms / 1000.0)
        self.relative_tolerance = relative_tolerance

    def sampled(self) -> bool:
        return self.fraction > 0 and (self.fraction >= 1 or random.random() < self.fraction)

    def send(self, path: str, body: bytes, request_id: str, primary: list[Any], report: Report) -> None:
        """Fire and forget; never raises, never awaits."""
        if len(self._tasks) >= self.max_in_flight:
            report("dropped", primary, None, 0.0, "")
            return
        task = asyncio.get_running_loop().create_task(self._call(path, body, request_id, primary, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(
        self, path: str, body: bytes, request_id: str, primary: list[Any], report: Report
    ) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=self.max_in_flight))
        t0 = time.perf_counter()
        try:
            resp = await self._client.post(
                self.url + path,
                content=body,
                timeout=self.timeout,
                headers={
                    "content-type": "application/json",
                    REQUEST_ID_HEADER: request_id,
                    MIRRORED_HEADER: "1",
                },
            )
            seconds = time.perf_counter() - t0
            if resp.status_code != 200:
                report("error", primary, None, seconds, "http_5xx" if resp.status_code >= 500 else "http_4xx")
                return
            doc = resp.json()
            preds = doc.get("predictions") if isinstance(doc, dict) else None
            if preds is None and isinstance(doc, dict) and doc.get("outputs"):
                preds = doc["outputs"][0].get("data")
            if not isinstance(preds, list):
                report("error", primary, None, seconds, "invalid")
                return
            report("ok", primary, preds, seconds, "")
        except Exception as e:  # timeouts, refused connections, bad JSON: all count as errors, none escape
            report("error", primary, None, time.perf_counter() - t0, _reason(e))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _reason(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.TransportError):
        return "connect"
    if isinstance(error, ValueError):  # the body was not JSON
        return "invalid"
    return "other"
