"""The ASGI app: MLflow scoring protocol, Open Inference Protocol v2, feedback, metrics.

Bad input of any kind gives a 4xx with {"error_code", "message"}; an unexpected failure gives a 500
for that request only, the worker keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlrollout.runtime import feedback as fb
from mlrollout.runtime import jsonio, openapi
from mlrollout.runtime.config import Settings
from mlrollout.runtime.config import dumps as config_dumps
from mlrollout.runtime.loading import LoadedModel
from mlrollout.runtime.schema import InputError
from mlrollout.runtime.scoring import ScoringApp, read_body
from mlrollout.runtime.worker import Runtime

log = logging.getLogger("mlrollout.runtime")
JSON = "application/json"

try:
    RUNTIME_VERSION = pkg_version("mlrollout")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    RUNTIME_VERSION = "0.0.0"


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonio.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def error_response(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    return json_response({"error_code": code, "message": message}, status)


def create_app(settings: Settings | None = None, model: LoadedModel | None = None) -> ScoringApp:
    settings = settings or Settings.from_env()
    rt = Runtime(settings, model)

    async def invocations(request: Request) -> Response:  # reached only through the raw path below
        raise HTTPException(500)

    v2_infer = invocations

    async def ping(request: Request) -> Response:
        if rt.ready:
            return Response(b"\n", media_type=JSON)
        return error_response(503, f"model not ready: {rt.load_error or 'loading'}", "NOT_READY")

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        if rt.ready:
            return json_response({"ready": True})
        return json_response(
            {"ready": False, "error_code": "NOT_READY", "message": rt.load_error or "loading"}, 503
        )

    def _check_model(request: Request) -> None:
        name = request.path_params["name"]
        want_version = request.path_params.get("version")
        if name != rt.name or (want_version is not None and want_version != rt.version):
            raise HTTPException(404, f"unknown model {name!r}; this server serves {rt.name!r}")

    async def model_ready(request: Request) -> Response:
        _check_model(request)
        return await ready(request)

    async def model_metadata(request: Request) -> Response:
        _check_model(request)
        m = rt.model
        inputs = []
        if m is not None:
            from mlrollout.runtime.schema import OIP_DATATYPES

            inputs = [
                {"name": c.name, "datatype": OIP_DATATYPES.get(c.type, "BYTES"), "shape": [-1]}
                for c in m.schema.columns
            ]
        return json_response(
            {
                "name": rt.name,
                "versions": [rt.version],
                "platform": f"mlflow-{m.flavor}" if m else "mlflow",
                "inputs": inputs,
                "outputs": [
                    {
                        "name": "predict",
                        "datatype": "BYTES" if m and m.classes and isinstance(m.classes[0], str) else "FP64",
                        "shape": [-1],
                    }
                ],
                "parameters": {
                    "track": rt.live.track,
                    "task": m.task if m else "unknown",
                    "classes": m.classes if m else [],
                },
            }
        )

    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "mlrollout", "version": RUNTIME_VERSION, "extensions": []})

    async def version(request: Request) -> Response:
        # Unlike MLflow's /version, say which model version is served: pods are labelled with it.
        return json_response(
            {
                "runtime": RUNTIME_VERSION,
                "model": rt.name,
                "model_version": rt.version,
                "track": rt.live.track,
                "flavor": rt.model.flavor if rt.model else None,
            }
        )

    async def feedback(request: Request) -> Response:
        status = 200
        try:
            if not fb.authorized(settings.feedback_token, request.headers.get("authorization")):
                raise InputError(
                    "feedback needs the shared token: Authorization: Bearer <token>",
                    status=401,
                    code="UNAUTHENTICATED",
                )
            body = await read_body(
                request.receive,
                request.headers.get("content-length", "").encode() or None,
                settings.max_body_bytes,
            )
            items = fb.parse(jsonio.loads(body), rt.outcomes)
            # Every item attributed before any is counted: a refused batch counts nothing.
            variants = await rt.attribute(items)
            counted = rt.record_feedback(items, variants)
            return json_response({"accepted": len(items), "duplicates": len(items) - counted})
        except InputError as exc:
            status = exc.status
            headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
            return json_response({"error_code": exc.code, "message": exc.message}, exc.status, headers)
        finally:
            if rt.metrics is not None and status != 200:
                rt.metrics.request(status, 0.0)

    async def metrics(request: Request) -> Response:
        data = rt.metrics.exposition() if rt.metrics is not None else b""
        return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi.build(rt.name, rt.version))

    async def config(request: Request) -> Response:
        return Response(config_dumps(rt.live), media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        return error_response(exc.status_code, str(exc.detail), code)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}", "INTERNAL_ERROR")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.startup()
        try:
            yield
        finally:
            await rt.shutdown()

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/config", config, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, 500: server_error}
    )
    app.state.runtime = rt
    return ScoringApp(app, rt)


def create_app_from_env() -> ScoringApp:
    """uvicorn factory for worker processes: settings come from MLROLLOUT_* variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings.from_env())
