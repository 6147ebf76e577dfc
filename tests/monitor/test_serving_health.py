"""Latency and throughput per track in status.monitoring: real Prometheus scraping real runtime
processes (a stable and a canary version); an unreachable Prometheus is named, the verdict stands."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from job_data import write_log, write_reference

from harness.procs import Proc, free_port
from harness.services import Prometheus
from mlrollout.api.monitoring_status import MonitoringStatus, TrackServing
from mlrollout.monitor.job import MonitorConfig, run
from mlrollout.monitor.serving_health import queries, serving_health
from mlrollout.monitor.stats.drift import DriftSettings

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _config(tmp_path: Path, prometheus: str | None, model: str = "churn") -> MonitorConfig:
    return MonitorConfig(
        namespace="ns",
        name="churn",
        reference_uri=str(tmp_path / "reference.parquet"),
        inference_log_uri=str(tmp_path / "log"),
        settings=DriftSettings(min_samples=200),
        window_seconds=3600.0,
        version="3",
        model_name=model,
        prometheus_address=prometheus,
    )


def test_queries_select_namespace_and_model_by_version_and_track() -> None:
    q = queries('n"s', "churn", 600)
    assert q["requests_per_second"] == (
        'sum by (version, track) (rate(mlrollout_requests_total{namespace="n\\"s",model="churn"}[600s]))'
    )
    assert q["latency_p99"].startswith("histogram_quantile(0.99, sum by (le, version, track) (rate(")
    assert set(q) == {"requests_per_second", "latency_p50", "latency_p95", "latency_p99"}


def test_unreachable_prometheus_is_named_and_the_verdict_still_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=1.0)
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    status = MonitoringStatus.model_validate(run(_config(tmp_path, address), NOW))
    assert status.verdict == "Drift"
    assert status.serving == [] and status.serving_message
    assert status.serving_message.startswith(f"Prometheus at {address} unreachable")
    # and without any address configured
    status = MonitoringStatus.model_validate(run(_config(tmp_path, None), NOW))
    assert (
        status.verdict == "Drift"
        and status.serving_message
        and "no Prometheus address" in status.serving_message
    )


def _runtime_models() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "runtime" / "runtime_models.py"
    spec = importlib.util.spec_from_file_location("mlrollout_test_runtime_models_health", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tracks(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two real runtime processes of one model: version 6 on stable, 7 on canary; track -> URL."""
    import httpx

    models = _runtime_models()
    model = models.forest(tmp_path / "clf")
    procs: list[Proc] = []
    try:
        urls = {}
        for track, version in (("stable", "6"), ("canary", "7")):
            port = free_port()
            env = {"MLROLLOUT_HOST": "127.0.0.1", "MLROLLOUT_CACHE_DIR": str(tmp_path / f"cache-{port}")}
            argv = [
                sys.executable, "-m", "mlrollout.runtime", str(model), "--port", str(port),
                "--model-name", "churn", "--model-version", version, "--track", track,
                "--trusted-types", models.TREE, "--max-delay-ms", "0",
            ]  # fmt: skip
            proc = Proc(f"runtime-{port}", argv, tmp_path / f"runtime-{port}.log", env=env).start()
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            proc.wait_ready(lambda u=url: httpx.get(u + "/ping", timeout=2).status_code == 200, timeout=180)
            urls[track] = url
        yield urls
    finally:
        for proc in procs:
            proc.stop()


def _send(urls: dict[str, str], stop: threading.Event) -> None:
    import httpx

    rows = {"instances": [[0.1 * i for i in range(20)]]}
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            for url in urls.values():
                client.post(url + "/invocations", json=rows)
            time.sleep(0.02)


@pytest.mark.services
def test_latency_and_throughput_per_track_from_real_prometheus(
    prometheus: Prometheus, tracks: dict[str, str], tmp_path: Path
) -> None:
    ns = f"health-{free_port()}"
    for url in tracks.values():
        prometheus.add_target(url.removeprefix("http://"), namespace=ns)
    stop = threading.Event()
    sender = threading.Thread(target=_send, args=(tracks, stop), daemon=True)
    sender.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            figures, message = serving_health(prometheus.url, ns, "churn", 60)
            complete = {(f.track, f.version) for f in figures if f.requests_per_second and f.latency_p99}
            if complete == {("canary", "7"), ("stable", "6")}:
                break
            assert time.monotonic() < deadline, (figures, message)
            time.sleep(1)
    finally:
        stop.set()
        sender.join(timeout=10)
    assert message is None
    for f in figures:
        assert f.latency_p50 is not None and f.latency_p95 is not None and f.latency_p99 is not None
        assert 0 < f.latency_p50 <= f.latency_p95 <= f.latency_p99 < 10
        assert f.requests_per_second is not None and f.requests_per_second > 0
    # the same through the Job: the drift verdict and the figures in one patch
    rng = np.random.default_rng(2)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=0.0)
    config = replace(_config(tmp_path, prometheus.url), namespace=ns)
    status = MonitoringStatus.model_validate(run(config, NOW))
    assert status.verdict == "NoDrift" and status.serving_message is None
    assert {(t.track, t.version) for t in status.serving} == {("canary", "7"), ("stable", "6")}
    assert all(isinstance(t, TrackServing) and t.requests_per_second for t in status.serving)
    # a model nobody serves: named, nothing invented
    none, why = serving_health(prometheus.url, ns, "other-model", 60)
    assert none == [] and why and "no requests of model other-model" in why
