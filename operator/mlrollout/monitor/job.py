"""`mlrollout monitor --config <file>`: one drift run, the verdict into status.monitoring.

Reads the reference and the window of the runtime's inference log (Parquet, through fsspec),
decides with `stats/`, writes Evidently's HTML report (drawn with our tests) and patches ONLY
status.monitoring through the status subresource. Bad input (missing reference, corrupt file,
mismatched columns, too few rows) is reported in status.monitoring.message with the previous
verdict kept; the exit code is non-zero only when the run could not report at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import pandas as pd
import yaml

from mlrollout.api.monitoring_status import ColumnDrift, MonitoringStatus
from mlrollout.api.names import GROUP, PLURAL, VERSION
from mlrollout.monitor.stats.drift import (
    ColumnResult,
    DriftResult,
    DriftSettings,
    dataset_drift,
    most_drifted,
)

INPUT_PREFIX = "input."
PREDICTION = "prediction"
MAX_COLUMNS = 32


class BadInput(Exception):
    """The run happened but its input cannot give a verdict; the message goes into status."""


@dataclass(frozen=True)
class MonitorConfig:
    namespace: str
    name: str
    reference_uri: str
    inference_log_uri: str
    settings: DriftSettings
    window_seconds: float | None = None
    version: str | None = None
    report_dir: str | None = None

    @classmethod
    def load(cls, path: str) -> MonitorConfig:
        with open(path, encoding="utf-8") as f:
            raw: dict[str, Any] = yaml.safe_load(f)  # JSON is YAML
        return cls(
            namespace=str(raw["namespace"]),
            name=str(raw["name"]),
            reference_uri=str(raw.get("referenceUri") or ""),
            inference_log_uri=str(raw["inferenceLogUri"]),
            settings=DriftSettings(
                p_value=float(raw.get("pValue", 0.05)),
                min_effect_size=float(raw.get("minEffectSize", 0.1)),
                drift_share=float(raw.get("driftShare", 0.5)),
                min_samples=int(raw.get("minSamples", 100)),
            ),
            window_seconds=float(raw["windowSeconds"]) if raw.get("windowSeconds") else None,
            version=str(raw["version"]) if raw.get("version") is not None else None,
            report_dir=raw.get("reportDir"),
        )


def _read_parquet(uri: str) -> pd.DataFrame:
    try:
        with fsspec.open(uri, "rb") as f:
            return pd.read_parquet(f)
    except FileNotFoundError as e:
        raise BadInput(f"not found: {uri}") from e
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise BadInput(f"cannot read Parquet {uri}: {type(e).__name__}") from e


def read_reference(uri: str) -> pd.DataFrame:
    if not uri:
        raise BadInput("no reference data: set spec.monitoring.referenceUri")
    return _read_parquet(uri)


def read_window(uri: str, now: datetime, window_seconds: float | None, version: str | None) -> pd.DataFrame:
    """Prediction rows of the inference log (a directory written by the runtime, or a glob)."""
    pattern = uri if any(ch in uri for ch in "*?[") else f"{uri.rstrip('/')}/predictions/**/*.parquet"
    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    files = sorted(p if protocol == "file" else f"{protocol}://{p}" for p in paths)
    frames = [_read_parquet(p) for p in files]
    if not frames:
        return pd.DataFrame()
    log = pd.concat(frames, ignore_index=True)
    if window_seconds is not None and "timestamp" in log:
        log = log[log["timestamp"] >= (now - timedelta(seconds=window_seconds)).timestamp()]
    if version is not None and "version" in log:
        log = log[log["version"].astype(str) == version]
    return log


def inputs_of(log: pd.DataFrame) -> pd.DataFrame:
    inputs = log[[c for c in log.columns if c.startswith(INPUT_PREFIX)]]
    frame = inputs.rename(columns=lambda c: c[len(INPUT_PREFIX) :])
    if PREDICTION in log:
        frame = frame.assign(**{PREDICTION: log[PREDICTION]})
    return frame


def compute(
    config: MonitorConfig, now: datetime
) -> tuple[DriftResult, pd.DataFrame, pd.DataFrame, list[str]]:
    reference = read_reference(config.reference_uri)
    current = inputs_of(read_window(config.inference_log_uri, now, config.window_seconds, config.version))
    features = [c for c in reference.columns if c != PREDICTION]
    if len(current) and set(features) != set(current.columns) - {PREDICTION}:
        missing = sorted(set(features) - set(current.columns))
        extra = sorted(set(current.columns) - set(features) - {PREDICTION})
        raise BadInput(f"reference columns differ from the model's inputs: missing {missing}, extra {extra}")
    if not len(current):
        current = pd.DataFrame(columns=list(reference.columns))
    prediction = PREDICTION if PREDICTION in reference and PREDICTION in current else None
    result = dataset_drift(reference, current, config.settings, features, prediction_column=prediction)
    return result, reference, current, features


def _column(r: ColumnResult) -> ColumnDrift:
    effect = r.effect_size if r.effect_size != float("inf") else 1e308
    return ColumnDrift(
        column=r.column,
        test=r.test,
        statistic=r.statistic,
        p_value=r.p_value,
        effect_size=effect,
        drifted=r.drifted,
    )


def status_of(
    result: DriftResult, now: datetime, config: MonitorConfig, report_uri: str | None
) -> dict[str, Any]:
    status = MonitoringStatus(
        verdict=result.verdict,
        version=config.version,
        last_run=now,
        window_start=now - timedelta(seconds=config.window_seconds) if config.window_seconds else None,
        window_end=now,
        samples=result.samples,
        drift_share=result.drift_share,
        columns=[_column(c) for c in most_drifted(result.columns, MAX_COLUMNS)],
        prediction_drift=_column(result.prediction) if result.prediction else None,
        report_uri=report_uri,
        message=result.message,
    )
    # explicit nulls clear stale fields from a previous run in a merge patch
    return status.model_dump(mode="json", by_alias=True)


def write_report(
    config: MonitorConfig, reference: pd.DataFrame, current: pd.DataFrame, features: list[str], now: datetime
) -> str | None:
    if not config.report_dir:
        return None
    from mlrollout.monitor.evidently_tests import drift_report  # Evidently is slow to import

    uri = f"{config.report_dir.rstrip('/')}/{config.name}-{now:%Y%m%dT%H%M%SZ}.html"
    columns = features + ([PREDICTION] if PREDICTION in reference and PREDICTION in current else [])
    html = drift_report(reference, current, config.settings, columns).get_html_str(as_iframe=False)
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return uri


def patch_monitoring(config: MonitorConfig, monitoring: dict[str, Any]) -> None:
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        # read KUBECONFIG now: the client's default path was fixed when it was imported
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    client.CustomObjectsApi().patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        config.namespace,
        PLURAL,
        config.name,
        {"status": {"monitoring": monitoring}},
        _content_type="application/merge-patch+json",  # touches status.monitoring only
    )


def run(config: MonitorConfig, now: datetime) -> dict[str, Any]:
    """The status.monitoring patch for one run (bad input: message only, verdict untouched)."""
    try:
        result, reference, current, features = compute(config, now)
    except BadInput as e:
        return {"lastRun": now.isoformat(), "message": str(e)[:1024]}
    report_uri = (
        write_report(config, reference, current, features, now) if result.verdict != "Insufficient" else None
    )
    return status_of(result, now, config, report_uri)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlrollout monitor")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(list(argv))
    try:
        config = MonitorConfig.load(args.config)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as e:
        print(f"monitor: bad config {args.config}: {e}", file=sys.stderr)
        return 2
    monitoring = run(config, datetime.now(UTC))
    try:
        patch_monitoring(config, monitoring)
    except Exception as e:  # could not report: let the Job retry
        print(f"monitor: cannot patch {config.namespace}/{config.name}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"verdict": monitoring.get("verdict"), "message": monitoring.get("message")}))
    return 0
