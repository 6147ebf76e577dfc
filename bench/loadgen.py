"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight each.

Raw asyncio streams (uvloop when present) keep the client cheap, so that on a 2-core machine it
takes as little CPU as possible from the server under test. Bounded by request count and time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float:
            if not lat:
                return float("nan")
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(q(0.50), 3),
            "p90_ms": round(q(0.90), 3),
            "p99_ms": round(q(0.99), 3),
        }


def build_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v.strip())
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length > 0:
        await reader.readexactly(length)
    return status


async def _worker(
    host: str, port: int, req: bytes, res: Result, stop_at: float, budget: list[int], record: bool
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            t0 = time.perf_counter()
            writer.write(req)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                res.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if record:
                res.latencies.append(time.perf_counter() - t0)
                res.requests += 1
                if status != 200:
                    res.errors += 1
    finally:
        writer.close()


async def run(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    seconds: float = 5.0,
    max_requests: int = 200_000,
    warmup_seconds: float = 1.0,
) -> Result:
    req = build_request(host, port, path, body)
    if warmup_seconds > 0:
        warm = Result(concurrency)
        await asyncio.gather(
            *[
                _worker(host, port, req, warm, time.perf_counter() + warmup_seconds, [max_requests], False)
                for _ in range(concurrency)
            ]
        )
    res = Result(concurrency)
    budget = [max_requests]
    t0 = time.perf_counter()
    await asyncio.gather(
        *[_worker(host, port, req, res, t0 + seconds, budget, True) for _ in range(concurrency)]
    )
    res.seconds = time.perf_counter() - t0
    return res


def run_sync(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    seconds: float = 5.0,
    max_requests: int = 200_000,
    warmup_seconds: float = 1.0,
) -> Result:
    try:
        import uvloop

        return uvloop.run(run(host, port, path, body, concurrency, seconds, max_requests, warmup_seconds))
    except ImportError:
        return asyncio.run(run(host, port, path, body, concurrency, seconds, max_requests, warmup_seconds))
