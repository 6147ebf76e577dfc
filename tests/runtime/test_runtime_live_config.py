"""Live settings from a mounted file (ConfigMap volume): reloaded without restarting the pod."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import AppFactory
from mlrollout.runtime.batching import MicroBatcher
from mlrollout.runtime.config import ConfigWatcher, LiveConfig, Settings


def test_merge_and_validation() -> None:
    base = LiveConfig.from_settings(Settings())
    cfg = base.merged(
        {
            "track": "canary",
            "batching": {"maxBatchSize": 8, "maxDelayMs": 0.5},
            "mirroring": {"url": "http://x", "percent": 25},
        }
    )
    assert (cfg.track, cfg.max_batch_size, cfg.max_delay_ms, cfg.mirror_url, cfg.mirror_fraction) == (
        "canary",
        8,
        0.5,
        "http://x",
        0.25,
    )
    for bad in ({"track": "purple"}, {"mirroring": {"fraction": 2}}, {"batching": {"maxBatchSize": 0}}):
        with pytest.raises(ValueError):
            base.merged(bad)


def test_settings_from_env_round_trip() -> None:
    s = Settings(
        model_uri="models:/m/2",
        workers=2,
        trusted_types=("a.B", "c.D"),
        allow_pickle=True,
        mirror_fraction=0.1,
    )
    assert Settings.from_env(s.to_env()) == s


def test_watcher_keeps_last_good_config(tmp_path: Path) -> None:
    f = tmp_path / "live.yaml"
    seen: list[LiveConfig] = []
    w = ConfigWatcher(str(f), LiveConfig(), seen.append)
    assert w.poll() is not None  # missing file: defaults
    f.write_text("track: preview\n")
    assert w.poll() is not None and seen[-1].track == "preview"
    assert w.poll() is None  # unchanged
    f.write_text("track: [oops\n")
    assert w.poll() is None and seen[-1].track == "preview"


def test_running_app_reloads_track_batching_mirroring(
    make_client: AppFactory, rf_path: Path, tmp_path: Path
) -> None:
    f = tmp_path / "live.yaml"
    f.write_text("track: stable\n")
    c = make_client(rf_path, model_name="rf", model_version="4", config_file=str(f))
    row = {"instances": [[0.0] * 20]}
    assert c.post("/invocations", json=row).status_code == 200
    # ConfigMap volumes swap a symlink: write a new file and rename over, as the kubelet does.
    new = tmp_path / "live.yaml.new"
    new.write_text(
        "track: canary\nbatching: {maxBatchSize: 4, maxDelayMs: 1}\n"
        "mirroring: {url: 'http://127.0.0.1:9', fraction: 0.0}\n"
    )
    os.replace(new, f)
    deadline = time.monotonic() + 10
    while c.get("/config").json()["track"] != "canary" and time.monotonic() < deadline:
        time.sleep(0.1)
    cfg = c.get("/config").json()
    assert cfg == {
        "track": "canary",
        "batching": {"maxBatchSize": 4, "maxDelayMs": 1.0},
        "mirroring": {
            "url": "http://127.0.0.1:9",
            "fraction": 0.0,
            "timeoutMs": 1000.0,
            "relativeTolerance": 1e-6,
        },
        "faults": {"errorRate": 0.0, "extraLatencyMs": 0.0},
    }
    assert c.post("/invocations", json=row).status_code == 200
    text = c.get("/metrics").text
    assert 'mlrollout_requests_total{code="200",model="rf",track="canary",version="4"} 1.0' in text
    assert 'mlrollout_model_ready{model="rf",track="canary",version="4"} 1.0' in text
    assert 'mlrollout_model_ready{model="rf",track="stable",version="4"} 0.0' in text
    assert c.app.state.runtime.batcher.max_batch_size == 4  # type: ignore[attr-defined]


def test_faults_are_off_by_default_and_validated() -> None:
    base = LiveConfig.from_settings(Settings())
    assert (base.fault_error_rate, base.fault_extra_latency_ms) == (0.0, 0.0)
    cfg = base.merged({"faults": {"errorRate": 0.5, "extraLatencyMs": 20}})
    assert (cfg.fault_error_rate, cfg.fault_extra_latency_ms) == (0.5, 20.0)
    assert base.merged({}).fault_error_rate == 0.0  # a document without faults switches them off
    for bad in ({"errorRate": 1.5}, {"errorRate": -0.1}, {"extraLatencyMs": -1}):
        with pytest.raises(ValueError, match="faults"):
            base.merged({"faults": bad})


def test_injected_faults_answer_500_and_are_counted_without_restart(
    make_client: AppFactory, rf_path: Path, tmp_path: Path
) -> None:
    f = tmp_path / "live.yaml"
    f.write_text("track: canary\n")
    c = make_client(rf_path, model_name="rf", model_version="4", config_file=str(f))
    row = {"instances": [[0.0] * 20]}
    assert [c.post("/invocations", json=row).status_code for _ in range(5)] == [200] * 5
    runtime = c.app.state.runtime  # type: ignore[attr-defined]
    new = tmp_path / "live.yaml.new"
    new.write_text("track: canary\nfaults: {errorRate: 1.0, extraLatencyMs: 1}\n")
    os.replace(new, f)
    deadline = time.monotonic() + 10
    while c.get("/config").json()["faults"]["errorRate"] != 1.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = c.post("/invocations", json=row)
    assert failed.status_code == 500 and failed.json()["error_code"] == "INJECTED_FAULT"
    assert c.post("/invocations", json={"bad": 1}).status_code == 400  # bad input stays a 4xx
    text = c.get("/metrics").text
    assert 'mlrollout_requests_total{code="500",model="rf",track="canary",version="4"} 1.0' in text
    assert c.app.state.runtime is runtime  # the same process and runtime: no restart
    os.replace(f, tmp_path / "gone.yaml")
    f.write_text("track: canary\n")
    deadline = time.monotonic() + 10
    while c.get("/config").json()["faults"]["errorRate"] != 0.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.post("/invocations", json=row).status_code == 200


def test_watcher_applies_on_the_event_loop_and_keeps_the_old_config_when_apply_fails(
    make_client: AppFactory,
    rf_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    applied_on_loop: list[bool] = []
    real = MicroBatcher.configure

    def configure(self: MicroBatcher, max_batch_size: int, max_delay_ms: float) -> None:
        try:
            asyncio.get_running_loop()
            applied_on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            applied_on_loop.append(False)
        if max_batch_size == 13:  # stands for any failure while applying
            raise RuntimeError("cannot apply")
        real(self, max_batch_size, max_delay_ms)

    monkeypatch.setattr(MicroBatcher, "configure", configure)
    f = tmp_path / "live.yaml"
    f.write_text("track: canary\nbatching: {maxBatchSize: 8}\n")
    c = make_client(rf_path, model_name="rf", model_version="4", config_file=str(f))

    def wait_for(pred: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not pred() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pred()

    def swap(text: str) -> None:
        new = tmp_path / "live.yaml.new"
        new.write_text(text)
        os.replace(new, f)

    assert c.get("/config").json()["batching"]["maxBatchSize"] == 8
    swap("track: preview\nbatching: {maxBatchSize: 13}\n")
    wait_for(lambda: "could not apply live config" in caplog.text)
    cfg = c.get("/config").json()
    assert (cfg["track"], cfg["batching"]["maxBatchSize"]) == ("canary", 8)  # the old one, whole
    assert c.app.state.runtime.batcher.max_batch_size == 8  # type: ignore[attr-defined]
    text = c.get("/metrics").text
    assert 'mlrollout_model_ready{model="rf",track="canary",version="4"} 1.0' in text
    assert c.post("/invocations", json={"instances": [[0.0] * 20]}).status_code == 200
    # The watcher lives on: the next good config is applied.
    swap("track: preview\nbatching: {maxBatchSize: 5}\n")
    wait_for(lambda: c.get("/config").json()["track"] == "preview")
    assert c.app.state.runtime.batcher.max_batch_size == 5  # type: ignore[attr-defined]
    assert applied_on_loop and all(applied_on_loop), applied_on_loop
