"""`mlrollout-runtime`: resolve and check the model once, then serve it with N worker processes."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mlrollout.runtime.config import TRACKS, Settings
from mlrollout.runtime.lineage import registered_types
from mlrollout.runtime.loading import (
    LoadedModel,
    ModelLoadError,
    check_model,
    parse_model_uri,
    resolve_local,
)
from mlrollout.runtime.worker import load_configured


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlrollout-runtime", description=__doc__)
    p.add_argument(
        "model_uri",
        nargs="?",
        help="models:/name/7, runs:/id/model, an artifact URI or a path (env MLROLLOUT_MODEL_URI)",
    )
    p.add_argument("--host", help="bind address (default 0.0.0.0; env MLROLLOUT_HOST wins)")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--model-name")
    p.add_argument("--model-version")
    p.add_argument("--track", choices=TRACKS)
    p.add_argument("--trusted-types", help="comma-separated skops types to trust")
    p.add_argument(
        "--trust-declared-types",
        action="store_true",
        default=None,
        help="also trust the skops types listed in the model's MLmodel file",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        default=None,
        help="allow loading pickle/cloudpickle models (runs code from the artifact)",
    )
    p.add_argument(
        "--allow-code",
        action="store_true",
        default=None,
        help="allow pyfunc models (imports the model's loader_module and code directory)",
    )
    p.add_argument("--max-body-bytes", type=int)
    p.add_argument("--max-batch-size", type=int)
    p.add_argument("--max-delay-ms", type=float)
    p.add_argument("--inference-log", dest="inference_log_uri", help="directory or fsspec URI")
    p.add_argument("--config-file", help="live settings file (ConfigMap volume), reloaded on change")
    p.add_argument("--mirror-url")
    p.add_argument("--mirror-fraction", type=float)
    p.add_argument("--cache-dir")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    trusted = tuple(t for t in args.trusted_types.split(",") if t) if args.trusted_types else None
    s = Settings.from_env(
        model_uri=args.model_uri,
        host=args.host,
        port=args.port,
        workers=args.workers,
        model_name=args.model_name,
        model_version=args.model_version,
        track=args.track,
        trusted_types=trusted,
        trust_declared_types=args.trust_declared_types,
        allow_pickle=args.allow_pickle,
        allow_code=args.allow_code,
        max_body_bytes=args.max_body_bytes,
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        inference_log_uri=args.inference_log_uri,
        config_file=args.config_file,
        mirror_url=args.mirror_url,
        mirror_fraction=args.mirror_fraction,
        cache_dir=args.cache_dir,
    )
    # The test harness gives each pod its own loopback address through MLROLLOUT_HOST.
    if os.environ.get("MLROLLOUT_HOST"):
        s = replace(s, host=os.environ["MLROLLOUT_HOST"])
    return s


def prepare(s: Settings) -> tuple[Settings, LoadedModel | None]:
    """Download once, then load once: with one worker the model is loaded here and served by this
    process; with several, each worker loads it and this process only checks that it would load
    (every refusal, nothing deserialized), so that a model that cannot load stops the process with a
    clear message instead of a crash loop of workers."""
    if not s.model_uri:
        raise ModelLoadError("no model: pass a model URI or set MLROLLOUT_MODEL_URI")
    name, version = parse_model_uri(s.model_uri)
    local = resolve_local(s.model_uri, s.cache_dir)
    s = replace(s, model_uri=local, model_name=s.model_name or name, model_version=s.model_version or version)
    if name and version:  # a registered version: what its lineage needs, if on the allow-list
        lineage = registered_types(name, version)
        s = replace(s, trusted_types=tuple(dict.fromkeys((*s.trusted_types, *lineage))))
    if s.workers > 1:
        check_model(
            local,
            trusted_types=s.trusted_types,
            allow_pickle=s.allow_pickle,
            allow_code=s.allow_code,
            trust_declared_types=s.trust_declared_types,
        )
        return s, None
    model = load_configured(s)
    return replace(s, model_name=model.name, model_version=model.version), model


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    s = build_settings(args)
    try:
        s, model = prepare(s)
    except ModelLoadError as exc:
        print(f"mlrollout-runtime: cannot load the model: {exc}", file=sys.stderr)
        return 2
    metrics_dir = ""
    if s.workers > 1:
        # Totals across workers on /metrics: prometheus_client multiprocess mode, a fresh directory.
        os.makedirs(s.cache_dir, exist_ok=True)
        metrics_dir = tempfile.mkdtemp(prefix="metrics-", dir=s.cache_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        s = replace(s, metrics_dir=metrics_dir)
    os.environ.update(s.to_env())
    import uvicorn

    from mlrollout.runtime.app import create_app

    # One worker: this process serves the model it loaded. Several: each worker loads it (spawned
    # processes share no memory with this one), from the local copy downloaded above.
    target: Any = create_app(s, model) if model is not None else "mlrollout.runtime.app:create_app_from_env"
    try:
        uvicorn.run(
            target,
            factory=model is None,
            host=s.host,
            port=s.port,
            workers=s.workers,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level=args.log_level.lower(),
            timeout_keep_alive=30,
            backlog=4096,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
