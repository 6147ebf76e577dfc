"""The hot path: POST /invocations and /v2/models/{name}[/versions/{v}]/infer as plain ASGI.

Scoring requests skip Starlette's request, routing and middleware objects (a measurable share of
the per-request cost with one row per request); every other path goes to the Starlette app.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlrollout.runtime import jsonio
from mlrollout.runtime.schema import InputError, oip_datatype

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mlrollout.runtime.config import LiveConfig
    from mlrollout.runtime.worker import Runtime

log = logging.getLogger("mlrollout.runtime")

Scope = dict[str, Any]
Receive = Any
Send = Any

_JSON_HEADERS = [(b"content-type", b"application/json")]
RETRY_AFTER_SECONDS = 1


def parse_v2_path(path: str) -> tuple[str, str | None] | None:
    """/v2/models/{name}/infer or /v2/models/{name}/versions/{v}/infer -> (name, version)."""
    parts = path.split("/")
    if len(parts) == 5 and parts[4] == "infer":
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[6] == "infer":
        return parts[3], parts[5]
    return None


class ScoringApp:
    def __init__(self, app: Starlette, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.state = app.state  # tests and tools reach the runtime as app.state.runtime
        self.in_flight = 0  # scoring requests between arrival and answer (this worker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/invocations":
                await self.score(scope, receive, send, path, None)
                return
            if path.startswith("/v2/models/"):
                target = parse_v2_path(path)
                if target is not None:
                    await self.score(scope, receive, send, path, target)
                    return
        await self.app(scope, receive, send)

    async def score(
        self, scope: Scope, receive: Receive, send: Send, path: str, target: tuple[str, str | None] | None
    ) -> None:
        t0 = time.perf_counter()
        rt = self.runtime
        headers = dict(scope["headers"])
        rid = rt.new_request_id(headers.get(b"x-request-id"))
        if self.in_flight >= rt.settings.max_concurrency:
            # Shed before reading the body: an overloaded worker spends nothing more on it.
            msg = f"overloaded: {self.in_flight} requests in flight; retry later"
            await respond(send, 503, jsonio.dumps({"error_code": "OVERLOADED", "message": msg}), rid)
            if rt.metrics is not None:
                rt.metrics.request(503, time.perf_counter() - t0)
            return
        self.in_flight += 1
        try:
            await self._score(scope, receive, send, path, target, headers, rid, t0)
        finally:
            self.in_flight -= 1

    async def _score(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        target: tuple[str, str | None] | None,
        headers: dict[bytes, bytes],
        rid: str,
        t0: float,
    ) -> None:
        rt = self.runtime
        status = 200
        after: Callable[[], None] | None = None
        try:
            if target is not None:
                name, want = target
                if name != rt.name or (want is not None and want != rt.version):
                    raise InputError(
                        f"unknown model {name!r}"
                        + (f" version {want!r}" if want else "")
                        + f"; this server serves {rt.name!r} version {rt.version!r}",
                        status=404,
                        code="MODEL_NOT_FOUND",
                    )
            ctype = headers.get(b"content-type", b"application/json")
            if b"json" not in ctype:
                raise InputError(
                    f"unsupported content type {ctype.decode('latin-1')!r}; send application/json",
                    status=415,
                    code="UNSUPPORTED_MEDIA_TYPE",
                )
            body = await read_body(receive, headers.get(b"content-length"), rt.settings.max_body_bytes)
            doc = jsonio.loads(body)
            model = rt.model
            if model is None:
                raise InputError(
                    f"model not ready: {rt.load_error or 'loading'}", status=503, code="NOT_READY"
                )
            batch = model.schema.parse_v2(doc) if target is not None else model.schema.parse_mlflow(doc)
            await inject_faults(rt.live)
            out = await rt.predict(batch)
            preds = out.tolist()
            if target is not None:
                payload: dict[str, Any] = {
                    "model_name": rt.name,
                    "model_version": rt.version,
                    "id": str(doc.get("id") or rid),
                    "outputs": [
                        {
                            "name": "predict",
                            "shape": [len(preds)],
                            "datatype": oip_datatype(out),
                            "data": preds,
                        }
                    ],
                }
            else:
                payload = {"predictions": preds}
            rt.served(rid)  # before the answer: feedback may follow at once
            await respond(send, 200, jsonio.dumps(payload), rid)
            elapsed = time.perf_counter() - t0
            mirrored = b"x-mlrollout-mirrored" in headers
            after = functools.partial(rt.after_prediction, path, mirrored, body, rid, batch, preds, elapsed)
        except InputError as exc:
            status = exc.status
            await respond(
                send, exc.status, jsonio.dumps({"error_code": exc.code, "message": exc.message}), rid
            )
        except InjectedFault as exc:
            status = 500
            await respond(send, 500, jsonio.dumps({"error_code": "INJECTED_FAULT", "message": str(exc)}), rid)
        except Exception as exc:
            status = 500
            log.exception("prediction failed")
            await respond(
                send,
                500,
                jsonio.dumps(
                    {"error_code": "INTERNAL_ERROR", "message": f"internal error: {type(exc).__name__}"}
                ),
                rid,
            )
        finally:
            if rt.metrics is not None:
                rt.metrics.request(status, time.perf_counter() - t0)
        # Outside the error handler: the response is sent, so a failure here must neither start a
        # second response nor count a 500 for a request that got its 200.
        if after is not None:
            try:
                after()
            except Exception:
                log.exception("post-response work (inference log, mirroring) failed for %s", rid)


class InjectedFault(RuntimeError):
    """A failure asked for by the live config's `faults` (never raised unless configured)."""


async def inject_faults(live: LiveConfig) -> None:
    if live.fault_extra_latency_ms > 0:
        await asyncio.sleep(live.fault_extra_latency_ms / 1000)
    if live.fault_error_rate > 0 and random.random() < live.fault_error_rate:
        raise InjectedFault("fault injected by the live config (faults.errorRate)")


async def read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    if length is not None and length.isdigit() and int(length) > limit:
        raise InputError(
            f"body of {length.decode()} bytes exceeds the limit of {limit} bytes",
            status=413,
            code="PAYLOAD_TOO_LARGE",
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InputError("client disconnected", status=400, code="DISCONNECTED")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputError(f"body exceeds the limit of {limit} bytes", status=413, code="PAYLOAD_TOO_LARGE")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def respond(send: Send, status: int, body: bytes, rid: str) -> None:
    headers = [
        *_JSON_HEADERS,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode("latin-1")),
    ]
    if status == 503:  # overloaded or not ready yet: both pass
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
