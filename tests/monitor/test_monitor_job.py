"""The monitor Job's I/O and verdict on files in tmp_path (no cluster: `run` builds the patch)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from job_data import write_log, write_reference

from mlrollout.api.monitoring_status import MonitoringStatus
from mlrollout.monitor.job import MonitorConfig, main, run
from mlrollout.monitor.stats.drift import DriftSettings

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _config(tmp_path: Path, **kw: object) -> MonitorConfig:
    values: dict[str, object] = {
        "namespace": "ns",
        "name": "churn",
        "reference_uri": str(tmp_path / "reference.parquet"),
        "inference_log_uri": str(tmp_path / "log"),
        "settings": DriftSettings(min_samples=200),
        "window_seconds": 3600.0,
        "version": "3",
        "report_dir": str(tmp_path / "reports"),
    }
    values.update(kw)
    return MonitorConfig(**values)  # type: ignore[arg-type]


def test_shifted_log_is_drift_with_columns_named_and_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=1.0)
    patch = run(_config(tmp_path), NOW)
    status = MonitoringStatus.model_validate(patch)
    assert status.verdict == "Drift" and status.samples == 1000
    assert sorted(c.column for c in status.columns if c.drifted) == ["age", "city"]
    assert status.prediction_drift is not None and status.prediction_drift.drifted
    assert status.report_uri and "<!DOCTYPE html>" in Path(status.report_uri).read_text()


def test_unshifted_log_is_no_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=0.0)
    patch = run(_config(tmp_path, report_dir=None), NOW)
    assert patch["verdict"] == "NoDrift" and patch["driftShare"] == 0.0 and patch["reportUri"] is None


def test_too_few_rows_is_insufficient(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 50, shift=1.0)
    patch = run(_config(tmp_path), NOW)
    assert patch["verdict"] == "Insufficient" and "too few rows" in patch["message"]


def test_empty_window_is_insufficient(tmp_path: Path) -> None:
    write_reference(tmp_path / "reference.parquet", np.random.default_rng(4))
    patch = run(_config(tmp_path), NOW)
    assert patch["verdict"] == "Insufficient" and patch["samples"] == 0


def _bad(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=1.0)


def test_missing_reference_keeps_verdict(tmp_path: Path) -> None:
    _bad(tmp_path)
    (tmp_path / "reference.parquet").unlink()
    patch = run(_config(tmp_path), NOW)
    assert (
        "verdict" not in patch and "not found" in patch["message"] and "reference.parquet" in patch["message"]
    )


def test_no_reference_configured(tmp_path: Path) -> None:
    _bad(tmp_path)
    patch = run(_config(tmp_path, reference_uri=""), NOW)
    assert "verdict" not in patch and "no reference" in patch["message"]


def test_corrupt_parquet_is_named(tmp_path: Path) -> None:
    _bad(tmp_path)
    corrupt = tmp_path / "log" / "predictions" / "date=2026-11-23" / "part-9.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    patch = run(_config(tmp_path), NOW)
    assert "verdict" not in patch and "part-9.parquet" in patch["message"]


def test_reference_with_other_columns_is_named(tmp_path: Path) -> None:
    _bad(tmp_path)
    import pandas as pd

    ref = pd.read_parquet(tmp_path / "reference.parquet").rename(columns={"plan": "tier"})
    ref.to_parquet(tmp_path / "reference.parquet")
    patch = run(_config(tmp_path), NOW)
    assert "verdict" not in patch
    assert "missing ['tier']" in patch["message"] and "extra ['plan']" in patch["message"]


def test_window_and_version_filter(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    write_reference(tmp_path / "reference.parquet", rng)
    write_log(tmp_path / "log", rng, 1000, shift=1.0)
    assert run(_config(tmp_path, version="4"), NOW)["samples"] == 0


def test_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"name": "x"}))
    assert main(["--config", str(path)]) == 2


def test_unreachable_api_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _bad(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"namespace: ns\nname: churn\nreferenceUri: {tmp_path / 'reference.parquet'}\n"
        f"inferenceLogUri: {tmp_path / 'log'}\nminSamples: 200\n"
    )
    assert main(["--config", str(config)]) == 1
