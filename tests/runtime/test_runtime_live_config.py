"""Live settings from a mounted file (ConfigMap volume): reloaded without restarting the pod."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import AppFactory
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
        "mirroring": {"url": "http://127.0.0.1:9", "fraction": 0.0, "timeoutMs": 1000.0},
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
