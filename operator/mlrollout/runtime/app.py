"""The ASGI app: MLflow scoring protocol, Open Inference Protocol v2, feedback, metrics.

Bad input of any kind gives a 4xx with {"error_code", "message"}; an unexpected failure gives a 500
for that request only, the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlrollout.runtime import feedback as fb
from mlrollout.runtime import jsonio, openapi
from mlrollout.runtime.batching import MicroBatcher
from mlrollout.runtime.config import ConfigWatcher, LiveConfig, Settings
from mlrollout.runtime.config import dumps as config_dumps
from mlrollout.runtime.inference_log import InferenceLog
from mlrollout.runtime.loading import (
    LoadedModel,
    ModelLoadError,
    load_model,
    parse_model_uri,
    predict_checked,
)
from mlrollout.runtime.metrics import Metrics
from mlrollout.runtime.mirroring import Mirror, agree
from mlrollout.runtime.request_index import RequestIndex
from mlrollout.runtime.schema import Batch, InputError
from mlrollout.runtime.scoring import ScoringApp, read_body

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


class Runtime:
    """Everything one worker process holds: model, batcher, metrics, log, mirror, live config."""

    def __init__(self, settings: Settings, model: LoadedModel | None = None) -> None:
        self.settings = settings
        self.live = LiveConfig.from_settings(settings)
        self.model = model
        self.load_error = ""
        self.name, self.version = default_identity(settings)
        self.metrics: Metrics | None = None
        self.batcher: MicroBatcher | None = None
        self.mirror = Mirror(settings.mirror_max_in_flight)
        self.log: InferenceLog | None = None
        self.requests: RequestIndex | None = None  # with the inference log: ids feedback may name
        self.outcomes = fb.parse_outcomes(settings.feedback_outcomes)
        self._tasks: list[asyncio.Task[None]] = []
        if model is not None:
            self._adopt(model)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher is not None

    # -- lifecycle -----------------------------------------------------------------------------------

    def _adopt(self, model: LoadedModel) -> None:
        self.model = model
        self.name, self.version = model.name, model.version

    def _load(self) -> None:
        s = self.settings
        try:
            model = load_model(
                s.model_uri,
                cache_dir=s.cache_dir,
                trusted_types=s.trusted_types,
                allow_pickle=s.allow_pickle,
                allow_code=s.allow_code,
                trust_declared_types=s.trust_declared_types,
                name=s.model_name,
                version=s.model_version,
            )
        except ModelLoadError as exc:
            self.load_error = str(exc)
            log.error("model not loaded: %s", exc)
            return
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("model not loaded")
            return
        self._adopt(model)

    async def startup(self) -> None:
        if self.model is None and self.settings.model_uri:
            await asyncio.to_thread(self._load)
        model = self.model
        self.metrics = Metrics(self.name, self.version, self.live.track)
        s = self.settings
        if s.inference_log_uri:
            self.log = InferenceLog(
                s.inference_log_uri,
                s.inference_log_rotate_rows,
                s.inference_log_rotate_seconds,
                s.inference_log_queue,
                on_drop=self.metrics.log_dropped.labels(*self.metrics.labels).inc,
            )
            self.log.start()
            self.requests = RequestIndex(s.inference_log_uri)
        self.apply(self.live)
        if s.config_file:
            watcher = ConfigWatcher(s.config_file, LiveConfig.from_settings(s), self.apply)
            watcher.poll()
            self._tasks.append(asyncio.get_running_loop().create_task(watcher.run()))
        if model is None:
            self.metrics.ready.labels(*self.metrics.labels).set(0)
            return
        self.metrics.load_seconds.labels(*self.metrics.labels).set(model.load_seconds)
        self.metrics.info.labels(*self.metrics.labels, model.flavor).set(1)
        m = model
        self.batcher = MicroBatcher(
            lambda b: predict_checked(m, b),
            self.live.max_batch_size,
            self.live.max_delay_ms,
            on_batch=self._on_batch,
            max_queue=s.max_queue,
        )
        self.batcher.start()
        self.metrics.ready.labels(*self.metrics.labels).set(1)

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.batcher is not None:
            await self.batcher.stop()
        await self.mirror.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        if self.metrics is not None:
            self.metrics.ready.labels(*self.metrics.labels).set(0)

    def apply(self, cfg: LiveConfig) -> None:
        """Live config (ConfigMap reload): track, batching, mirroring; no restart. All or nothing:
        when a part fails, the previous config is put back and the error raised to the watcher."""
        old = self.live
        try:
            self._apply(cfg, old)
        except Exception:
            with contextlib.suppress(Exception):
                self._apply(old, cfg)
            raise

    def _apply(self, cfg: LiveConfig, old: LiveConfig) -> None:
        old_track = old.track
        self.live = cfg
        if self.metrics is not None and cfg.track != old_track:
            self.metrics.ready.labels(*self.metrics.labels).set(0)
            self.metrics.set_track(cfg.track)
            self.metrics.ready.labels(*self.metrics.labels).set(1 if self.ready else 0)
        if self.batcher is not None:
            self.batcher.configure(cfg.max_batch_size, cfg.max_delay_ms)
        self.mirror.configure(cfg.mirror_url, cfg.mirror_fraction, cfg.mirror_timeout_ms)
        log.info(
            "live config: track=%s batch=%d/%.1fms mirror=%s@%.3f faults=%.3f/+%.0fms",
            cfg.track,
            cfg.max_batch_size,
            cfg.max_delay_ms,
            cfg.mirror_url or "-",
            cfg.mirror_fraction,
            cfg.fault_error_rate,
            cfg.fault_extra_latency_ms,
        )

    def record_feedback(self, items: list[fb.Item]) -> None:
        mt = self.metrics
        for it in items:
            if mt is not None:
                mt.feedback.labels(*mt.labels, it.outcome).inc()
                if it.value is not None:
                    mt.feedback_value.labels(*mt.labels, it.outcome).inc(it.value)
            if self.log is not None:
                self.log.log_label(
                    it.request_id,
                    self.name,
                    self.version,
                    self.live.track,
                    label=it.label,
                    outcome=it.outcome,
                    value=it.value,
                )

    def _on_batch(self, size: int) -> None:
        # Called from the event loop thread (after the executor future resolves).
        if self.metrics is not None:
            self.metrics.d_batch.observe(size)

    # -- prediction ------------------------------------------------------------------------------------

    async def predict(self, batch: Batch) -> np.ndarray[Any, Any]:
        if self.batcher is None:
            raise InputError(f"model not ready: {self.load_error or 'loading'}", status=503, code="NOT_READY")
        return await self.batcher.submit(batch)

    def after_prediction(
        self, path: str, mirrored: bool, body: bytes, rid: str, batch: Batch, preds: list[Any], seconds: float
    ) -> None:
        m = self.model
        assert m is not None and self.metrics is not None
        self.metrics.predicted(preds, m.task == "classification")
        if self.log is not None:
            self.log.log_predictions(
                rid,
                self.name,
                self.version,
                self.live.track,
                batch.records(m.schema.names or _frame_cols(batch)),
                preds,
                latency_ms=round(seconds * 1000, 3),
            )
        if not mirrored and self.mirror.sampled():
            records = batch.records(m.schema.names or _frame_cols(batch)) if self.log is not None else []
            # The shadow serves another version of the same model: drop a version pin from the path.
            self.mirror.send(
                path.split("/versions/")[0] + "/infer" if "/versions/" in path else path,
                body,
                rid,
                preds,
                lambda result, primary, shadow, secs: self._shadow_report(
                    rid, records, result, primary, shadow, secs
                ),
            )

    def _shadow_report(
        self,
        rid: str,
        records: list[dict[str, Any]],
        result: str,
        primary: list[Any],
        shadow: list[Any] | None,
        seconds: float,
    ) -> None:
        mt = self.metrics
        if mt is None:
            return
        mt.shadow_requests.labels(*mt.labels, result).inc()
        if result == "dropped":
            return
        mt.shadow_duration.labels(*mt.labels).observe(seconds)
        if shadow is None:
            return
        agreed = sum(1 for a, b in zip(primary, shadow, strict=False) if agree(a, b))
        mt.shadow_compared.labels(*mt.labels).inc(len(primary))
        mt.shadow_agreement.labels(*mt.labels).inc(agreed)
        if self.log is not None:
            self.log.log_predictions(
                rid,
                self.name,
                self.version,
                "shadow",
                records,
                shadow,
                kind="shadow",
                latency_ms=round(seconds * 1000, 3),
            )


def default_identity(s: Settings) -> tuple[str, str]:
    """Name and version to label metrics with before (or without) a loaded model."""
    try:
        reg_name, reg_version = parse_model_uri(s.model_uri)
    except ModelLoadError:
        reg_name, reg_version = "", ""
    name = s.model_name or reg_name or s.model_uri.rstrip("/").rsplit("/", 1)[-1]
    return name, s.model_version or reg_version or "0"


def _frame_cols(batch: Batch) -> list[str]:
    return [str(c) for c in batch.frame.columns] if batch.frame is not None else []


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
            index = rt.requests
            if index is not None:
                unseen = {it.request_id for it in items if not index.served_here(it.request_id)}
                for rid in unseen:
                    if not await asyncio.to_thread(index.known, rid):
                        raise InputError(
                            f"unknown request id {rid!r}: not in the inference log of {rt.name} "
                            f"(rows reach storage every {settings.inference_log_rotate_seconds:g}s; "
                            "retry later for a request served just now)",
                            status=404,
                            code="UNKNOWN_REQUEST_ID",
                        )
            rt.record_feedback(items)
            return json_response({"accepted": len(items)})
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
