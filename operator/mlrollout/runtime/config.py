"""Runtime settings.

Static settings come from flags or MLROLLOUT_* environment variables (a change rolls the pod).
Live settings (track, batching, mirroring) come from a mounted file, typically a ConfigMap volume,
and are reloaded when its content changes, so that a shadow phase never restarts stable pods.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from mlrollout.api import names

log = logging.getLogger("mlrollout.runtime.config")

ENV_PREFIX = "MLROLLOUT_"
TRACKS = names.TRACKS  # the one list, shared with the operator


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    model_uri: str = ""
    model_name: str = ""  # defaults to the registry name or the directory name
    model_version: str = ""  # defaults to the pinned registry version, else "0"
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    track: str = "stable"
    trusted_types: tuple[str, ...] = ()  # skops types to trust, e.g. sklearn.tree._tree.Tree; none by default
    trust_declared_types: bool = False  # also trust the skops_trusted_types written in MLmodel
    allow_pickle: bool = False  # pickle/cloudpickle artifacts run code when loaded: opt-in only
    allow_code: bool = False  # pyfunc models import their loader_module / code dir: opt-in only
    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_size: int = 32
    max_delay_ms: float = 2.0
    # Load shedding, per worker: scoring requests in flight (reading, queued, predicting) and
    # requests waiting for the model; beyond either a 503 with Retry-After. Memory stays bounded by
    # max_concurrency x max_body_bytes whatever the offered load.
    max_concurrency: int = 256
    max_queue: int = 128
    inference_log_uri: str = ""  # directory or fsspec URI; empty disables the log
    inference_log_rotate_rows: int = 50_000
    inference_log_rotate_seconds: float = 60.0
    inference_log_queue: int = 100_000  # rows buffered at most; beyond that rows are dropped, counted
    config_file: str = ""
    mirror_url: str = ""
    mirror_fraction: float = 0.0
    mirror_timeout_ms: float = 1000.0
    mirror_max_in_flight: int = 64
    # /feedback: outcome names besides `label` (name[=proportion|mean]), and an optional bearer
    # token (from a Secret); with the inference log on, request ids must be ones this model served.
    feedback_outcomes: tuple[str, ...] = ()
    feedback_token: str = ""
    cache_dir: str = "/tmp/mlrollout"
    metrics_dir: str = ""  # prometheus multiprocess dir; set by the launcher when workers > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[ENV_PREFIX + f.name.upper()] = ",".join(v) if isinstance(v, tuple) else str(v)
        return out


def _coerce(name: str, raw: str) -> Any:
    default = getattr(Settings(), name)
    if isinstance(default, bool):
        return _env_bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        return tuple(s.strip() for s in raw.split(",") if s.strip())
    return raw


@dataclass(frozen=True)
class LiveConfig:
    """Settings that change without a restart."""

    track: str = "stable"
    max_batch_size: int = 32
    max_delay_ms: float = 2.0
    mirror_url: str = ""
    mirror_fraction: float = 0.0
    mirror_timeout_ms: float = 1000.0
    # Numeric predictions of primary and shadow agree within this relative error (labels: equal).
    mirror_relative_tolerance: float = 1e-6
    # Fault injection, off unless a live config asks for it: rollout tests and game days use it to
    # make a candidate fail or slow down on purpose, without a special model or a restart.
    fault_error_rate: float = 0.0
    fault_extra_latency_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: Settings) -> LiveConfig:
        return cls(
            track=s.track,
            max_batch_size=s.max_batch_size,
            max_delay_ms=s.max_delay_ms,
            mirror_url=s.mirror_url,
            mirror_fraction=s.mirror_fraction,
            mirror_timeout_ms=s.mirror_timeout_ms,
        )

    def merged(self, doc: Mapping[str, Any]) -> LiveConfig:
        """Apply a config document (camelCase, as in the CRD) over these values; validate ranges."""
        batching = doc.get("batching") or {}
        mirroring = doc.get("mirroring") or {}
        track = str(doc.get("track", self.track))
        if track not in TRACKS:
            raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
        if "fraction" in mirroring:
            fraction = float(mirroring["fraction"])
        elif "percent" in mirroring:
            fraction = float(mirroring["percent"]) / 100
        else:
            fraction = self.mirror_fraction
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"mirroring.fraction must be within [0, 1], got {fraction}")
        tolerance = float(mirroring.get("relativeTolerance", self.mirror_relative_tolerance))
        if not 0.0 <= tolerance <= 1.0:
            raise ValueError(f"mirroring.relativeTolerance must be within [0, 1], got {tolerance}")
        faults = doc.get("faults") or {}
        error_rate = float(faults.get("errorRate", 0.0))
        extra_latency = float(faults.get("extraLatencyMs", 0.0))
        if not 0.0 <= error_rate <= 1.0 or not 0.0 <= extra_latency <= 60_000:
            raise ValueError("faults.errorRate must be within [0, 1] and extraLatencyMs within [0, 60000]")
        size = int(batching.get("maxBatchSize", self.max_batch_size))
        delay = float(batching.get("maxDelayMs", self.max_delay_ms))
        if size < 1 or delay < 0:
            raise ValueError("batching.maxBatchSize must be >= 1 and maxDelayMs >= 0")
        return replace(
            self,
            track=track,
            max_batch_size=size,
            max_delay_ms=delay,
            mirror_url=str(mirroring.get("url", self.mirror_url) or ""),
            mirror_fraction=fraction,
            mirror_timeout_ms=float(mirroring.get("timeoutMs", self.mirror_timeout_ms)),
            mirror_relative_tolerance=tolerance,
            fault_error_rate=error_rate,
            fault_extra_latency_ms=extra_latency,
        )


def parse_document(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text) if text.strip() else {}
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError("config file must hold a mapping")
    return doc


class ConfigWatcher:
    """Polls the mounted file; ConfigMap volumes swap a symlink, so compare content, not inode.

    The file is read off the event loop; the new config is applied on it (the runtime's state is
    the loop's). A config that does not parse, or whose apply raises, is logged and the previous
    one stays in force; the watcher itself never stops.
    """

    def __init__(
        self, path: str, base: LiveConfig, on_change: Callable[[LiveConfig], None], interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.base = base
        self.on_change = on_change
        self.interval = interval
        self._last: str | None = None

    def read(self) -> str:
        try:
            return self.path.read_text()
        except OSError:
            return ""

    def consider(self, text: str) -> LiveConfig | None:
        """The config applied, or None (unchanged, invalid, or its apply failed)."""
        if text == self._last:
            return None
        self._last = text
        try:
            cfg = self.base.merged(parse_document(text))
        except (ValueError, TypeError, yaml.YAMLError) as exc:
            # Keep serving with the last good settings: a typo in a ConfigMap must not take pods down.
            log.error("ignoring invalid live config %s: %s", self.path, exc)
            return None
        try:
            self.on_change(cfg)
        except Exception:
            log.exception("could not apply live config %s; the previous config stays in force", self.path)
            return None
        return cfg

    def poll(self) -> LiveConfig | None:
        return self.consider(self.read())

    async def run(self) -> None:
        while True:
            try:
                self.consider(await asyncio.to_thread(self.read))
            except Exception:  # pragma: no cover - consider() already catches; never let the task die
                log.exception("live config watcher")
            await asyncio.sleep(self.interval)


def dumps(cfg: LiveConfig) -> str:
    return json.dumps(
        {
            "track": cfg.track,
            "batching": {"maxBatchSize": cfg.max_batch_size, "maxDelayMs": cfg.max_delay_ms},
            "mirroring": {
                "url": cfg.mirror_url,
                "fraction": cfg.mirror_fraction,
                "timeoutMs": cfg.mirror_timeout_ms,
                "relativeTolerance": cfg.mirror_relative_tolerance,
            },
            "faults": {"errorRate": cfg.fault_error_rate, "extraLatencyMs": cfg.fault_extra_latency_ms},
        }
    )
