"""What one worker process holds: the model, batcher, metrics, inference log, mirror, live config.

Below the HTTP layers (app, scoring): they call it, it never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import numpy as np

from mlrollout.runtime import attribution
from mlrollout.runtime import feedback as fb
from mlrollout.runtime.batching import MicroBatcher
from mlrollout.runtime.config import ConfigWatcher, LiveConfig, Settings
from mlrollout.runtime.inference_log import InferenceLog
from mlrollout.runtime.loading import (
    LoadedModel,
    ModelLoadError,
    load_model,
    parse_model_uri,
    predict_checked,
)
from mlrollout.runtime.metrics import Metrics
from mlrollout.runtime.mirroring import ERROR_REASONS, Mirror, agree
from mlrollout.runtime.request_index import RequestIndex
from mlrollout.runtime.schema import Batch, InputError

log = logging.getLogger("mlrollout.runtime")


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
        self.recent = attribution.Recent()  # ids answered here, and by which track
        self.counted = attribution.Counted()  # (id, outcome) already counted: a resend counts once
        self.variants = attribution.Variants((self.version, self.live.track))
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
            model = load_configured(s)
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
        self.variants = attribution.Variants((self.version, self.live.track))
        self.metrics.start_feedback(sorted(self.outcomes))
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
        self.mirror.configure(
            cfg.mirror_url, cfg.mirror_fraction, cfg.mirror_timeout_ms, cfg.mirror_relative_tolerance
        )
        if self.metrics is not None:
            mt = self.metrics
            mt.mirror_fraction.labels(*mt.labels).set(self.mirror.fraction)
            if self.mirror.fraction > 0:  # the window's counters from 0, so increase() sees them all
                for result in ("ok", "error", "dropped"):
                    mt.shadow_requests.labels(*mt.labels, result)
                for reason in ERROR_REASONS:
                    mt.shadow_errors.labels(*mt.labels, reason)
                mt.shadow_compared.labels(*mt.labels)
                mt.shadow_agreement.labels(*mt.labels)
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

    def new_request_id(self, given: bytes | None) -> str:
        """The caller's x-request-id as given, else a new id carrying this pod's variant."""
        rid = attribution.request_id(given)
        if given is not None and rid.encode("latin-1") == given:
            return rid
        return attribution.tagged_id(rid, self.version, self.live.track)

    def served(self, request_id: str) -> None:
        """Called on the request path before the answer: feedback may follow at once."""
        self.recent.remember(request_id, self.live.track)
        if self.requests is not None:
            self.requests.remember(request_id)

    async def attribute(self, items: list[fb.Item]) -> list[attribution.Variant]:
        """The variant (version, track) that served each item's request, or InputError: an id
        nobody served (with the inference log on), or more variants than this process labels."""
        found: list[attribution.Variant] = []
        for it in items:
            track = self.recent.track_of(it.request_id)
            variant = (self.version, track) if track is not None else attribution.variant_of(it.request_id)
            if variant is None and self.requests is not None:
                logged = await asyncio.to_thread(self.requests.logged, it.request_id)
                if logged is None:
                    raise InputError(
                        f"unknown request id {it.request_id!r}: not in the inference log of {self.name} "
                        f"(rows reach storage every {self.settings.inference_log_rotate_seconds:g}s; "
                        "retry later for a request served just now)",
                        status=404,
                        code="UNKNOWN_REQUEST_ID",
                    )
                variant = logged if all(logged) else None
            # No log to ask: an untagged id another pod served counts under this pod's variant.
            variant = variant or (self.version, self.live.track)
            if not self.variants.admits(variant):
                raise InputError(
                    f"request id {it.request_id!r} names a variant beyond the {self.variants.limit} "
                    "this server counts feedback for",
                    status=422,
                    code="TOO_MANY_VARIANTS",
                )
            found.append(variant)
        return found

    def record_feedback(self, items: list[fb.Item], variants: list[attribution.Variant]) -> int:
        """Count each item under its variant, once per (request id, outcome); the number counted."""
        mt = self.metrics
        counted = 0
        for it, (version, track) in zip(items, variants, strict=True):
            if self.counted.seen(it.request_id, it.outcome):
                continue
            self.counted.add(it.request_id, it.outcome)
            self.variants.add((version, track))
            counted += 1
            value = it.value
            if value is None and self.outcomes.get(it.outcome) == "proportion":
                value = 1.0  # a posted conversion without a value happened
            if mt is not None:
                mt.feedback_event(version, track, it.outcome, value)
            if self.log is not None:
                self.log.log_label(
                    it.request_id,
                    self.name,
                    version,
                    track,
                    label=it.label,
                    outcome=it.outcome,
                    value=value,
                )
        return counted

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
                lambda result, primary, shadow, secs, reason: self._shadow_report(
                    rid, records, result, primary, shadow, secs, reason
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
        reason: str,
    ) -> None:
        mt = self.metrics
        if mt is None:
            return
        mt.shadow_requests.labels(*mt.labels, result).inc()
        if reason:
            mt.shadow_errors.labels(*mt.labels, reason).inc()
        if result == "dropped":
            return
        mt.shadow_duration.labels(*mt.labels).observe(seconds)
        if shadow is None:
            return
        tolerance = self.mirror.relative_tolerance
        agreed = sum(1 for a, b in zip(primary, shadow, strict=False) if agree(a, b, tolerance))
        # rows beyond the shorter answer disagree (rollout.shadow.agreement counts them so too)
        mt.shadow_compared.labels(*mt.labels).inc(max(len(primary), len(shadow)))
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


def load_configured(s: Settings) -> LoadedModel:
    """The model at s.model_uri, loaded under the settings' policy (trusted types, pickle, code)."""
    return load_model(
        s.model_uri,
        cache_dir=s.cache_dir,
        trusted_types=s.trusted_types,
        allow_pickle=s.allow_pickle,
        allow_code=s.allow_code,
        trust_declared_types=s.trust_declared_types,
        name=s.model_name,
        version=s.model_version,
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
