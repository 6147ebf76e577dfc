"""`mlrollout monitor --config <file>`: one drift run, the verdict into status.monitoring.

Reads the reference and the window of the runtime's inference log (Parquet, through fsspec),
decides with `stats/`, joins the labels posted to /feedback (performance once `labelDelay` has
passed), writes Evidently's HTML report (drawn with our tests), logs it to MLflow on the serving
version and patches ONLY status.monitoring through the status subresource. Bad input (missing
reference, corrupt file, mismatched columns, an unreachable store) is reported in
status.monitoring.reason/message with the previous verdict kept; too few rows is "Insufficient".
The exit code is non-zero only when the run could not report at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from mlrollout.api.monitoring_status import ColumnDrift, MonitoringStatus
from mlrollout.api.names import GROUP, PLURAL, VERSION
from mlrollout.api.training import TAG_FEATURE_IMPORTANCE, TAG_REFERENCE_URI
from mlrollout.monitor.importance import (
    Predicts,
    Stability,
    decode,
    permutation_importances,
    rank_correlation,
)
from mlrollout.monitor.performance import Performance, PerformanceSettings, evaluate
from mlrollout.monitor.serving_health import serving_health
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
REPORT_ARTIFACT_DIR = "mlrollout-monitor"
REPORT_TAG = "mlrollout.monitor.report"
VERDICT_TAG = "mlrollout.monitor.verdict"
REFERENCE_URI_TAG = TAG_REFERENCE_URI  # written by the built-in trainer on the versions it registers
MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:")


class BadInput(Exception):
    """The run happened but its input cannot give a verdict; reason and message go into status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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
    model_name: str | None = None
    tracking_uri: str | None = None
    columns: tuple[str, ...] | None = None
    performance: PerformanceSettings | None = None
    prometheus_address: str | None = None  # latency and throughput per track
    trusted_types: tuple[str, ...] = ()  # spec.serving's: the monitor loads the model like a serving pod
    allow_code: bool = False

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
            model_name=str(raw["modelName"]) if raw.get("modelName") else None,
            tracking_uri=str(raw["trackingUri"]) if raw.get("trackingUri") else None,
            columns=tuple(str(c) for c in raw["columns"]) if raw.get("columns") else None,
            performance=_performance(raw.get("performance")),
            prometheus_address=str(raw["prometheusAddress"]) if raw.get("prometheusAddress") else None,
            trusted_types=tuple(str(t) for t in raw.get("trustedTypes") or ()),
            allow_code=bool(raw.get("allowCode", False)),
        )


def _performance(raw: Any) -> PerformanceSettings | None:
    if not isinstance(raw, dict):
        return None
    return PerformanceSettings(
        metric=str(raw["metric"]) if raw.get("metric") else None,
        label_delay_seconds=float(raw.get("labelDelaySeconds", 3600)),
        min_samples=int(raw.get("minSamples", 100)),
    )


def _read_table(uri: str, reason: str) -> pa.Table:
    try:
        with fsspec.open(uri, "rb") as f:
            return pq.read_table(f)
    except FileNotFoundError as e:
        raise BadInput("NoReference" if reason == "BadReference" else reason, f"not found: {uri}") from e
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise BadInput(reason, f"cannot read Parquet {uri}: {type(e).__name__}") from e


def _to_pandas(table: pa.Table, categorical: Callable[[str], bool]) -> pd.DataFrame:
    """Text columns chosen by `categorical` as pandas Categoricals, encoded by Arrow: a million
    Python strings per column cost more to build and to count than the drift test itself."""
    for i, field in enumerate(table.schema):
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if text and categorical(field.name):
            table = table.set_column(i, field.name, pc.dictionary_encode(table.column(i)))
    return table.to_pandas()


def _read_parquet(uri: str, reason: str) -> pd.DataFrame:
    return _to_pandas(_read_table(uri, reason), lambda _: True)


def read_reference(uri: str, tracking_uri: str | None = None) -> pd.DataFrame:
    if not uri:
        raise BadInput("NoReference", "no reference data: set spec.monitoring.referenceUri")
    if uri.startswith(MLFLOW_SCHEMES):
        return _read_mlflow_artifact(uri, tracking_uri)
    return _read_parquet(uri, "BadReference")


def _read_mlflow_artifact(uri: str, tracking_uri: str | None) -> pd.DataFrame:
    """A reference the trainer logged to MLflow (runs:/<run>/reference/reference.parquet)."""
    import tempfile

    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as folder:  # /tmp is the pod's emptyDir
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri
            )
        except Exception as e:  # MlflowException, network: either way there is no reference to read
            raise BadInput("NoReference", f"cannot download {uri}: {type(e).__name__}: {e}"[:500]) from e
        return _read_parquet(local, "BadReference")


def reference_uri(config: MonitorConfig) -> str:
    """The serving version's own reference wins over spec.monitoring.referenceUri: a version the
    built-in trainer registered is compared with the data it learned from (tag mlrollout.reference_uri),
    not with its parent's. Without the tag (a model trained elsewhere), the spec's reference."""
    if not (config.model_name and config.version and config.tracking_uri):
        return config.reference_uri
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    try:
        tags = client.get_model_version(config.model_name, config.version).tags
    except Exception as e:  # guessing the reference could call a retrained model's own data drift
        raise BadInput(
            "RegistryUnreachable",
            f"cannot read the lineage of {config.model_name} version {config.version}: "
            f"{type(e).__name__}: {e}"[:500],
        ) from e
    return str(tags.get(REFERENCE_URI_TAG) or config.reference_uri)


def read_stream(uri: str, stream: str = "predictions") -> pd.DataFrame:
    """One stream of the inference log (a directory written by the runtime, or a glob), timestamps
    as epoch seconds (the runtime writes them as UTC timestamps)."""
    pattern = uri if any(ch in uri for ch in "*?[") else f"{uri.rstrip('/')}/{stream}/**/*.parquet"
    try:
        fs, _, paths = fsspec.get_fs_token_paths(pattern)
    except Exception as e:  # botocore, aiohttp and OSError all mean: cannot reach the store
        raise BadInput("StoreUnreachable", f"cannot list {pattern}: {type(e).__name__}: {e}"[:500]) from e
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    files = sorted(p if protocol == "file" else f"{protocol}://{p}" for p in paths)
    tables = [_epoch_seconds(_read_table(p, "BadWindow")) for p in files]
    if not tables:
        return pd.DataFrame()
    try:  # files written before a column was added lack it: nulls there
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise BadInput("BadWindow", f"the log's files do not fit together: {e}"[:500]) from e
    return _to_pandas(table, lambda name: name.startswith(INPUT_PREFIX))


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _epoch_seconds(table: pa.Table) -> pa.Table:
    """`timestamp` as float epoch seconds (the runtime writes UTC timestamps; older files floats)."""
    index = table.schema.get_field_index("timestamp")
    if index < 0 or not pa.types.is_timestamp(table.schema.field(index).type):
        return table
    column = table.column(index)
    units = pc.cast(column, pa.timestamp(column.type.unit)).cast(pa.int64())  # epoch-based, tz aside
    seconds = pc.divide(pc.cast(units, pa.float64(), safe=False), float(_PER_SECOND[column.type.unit]))
    return table.set_column(index, "timestamp", seconds)


def in_window(
    log: pd.DataFrame,
    end: datetime,
    window_seconds: float | None,
    version: str | None,
    closed: bool = False,
) -> pd.DataFrame:
    """Primary predictions of `version` from end - window on (up to `end` too when `closed`)."""
    if "timestamp" in log:
        if window_seconds is not None:
            log = log[log["timestamp"] >= (end - timedelta(seconds=window_seconds)).timestamp()]
        if closed:
            log = log[log["timestamp"] <= end.timestamp()]
    if version is not None and "version" in log:
        log = log[log["version"].astype(str) == version]
    if "kind" in log:  # mirrored (shadow) traffic is not what users were served
        log = log[log["kind"].isna() | (log["kind"] == "primary")]
    return log


def read_window(uri: str, now: datetime, window_seconds: float | None, version: str | None) -> pd.DataFrame:
    """Prediction rows of the inference log in the window ending now."""
    return in_window(read_stream(uri), now, window_seconds, version)


def inputs_of(log: pd.DataFrame) -> pd.DataFrame:
    inputs = log[[c for c in log.columns if c.startswith(INPUT_PREFIX)]]
    frame = inputs.rename(columns=lambda c: c[len(INPUT_PREFIX) :])
    if PREDICTION in log:
        frame = frame.assign(**{PREDICTION: log[PREDICTION]})
    return frame


def compute(
    config: MonitorConfig, now: datetime, log: pd.DataFrame | None = None
) -> tuple[DriftResult, pd.DataFrame, pd.DataFrame, list[str]]:
    reference = read_reference(reference_uri(config), config.tracking_uri)
    log = read_stream(config.inference_log_uri) if log is None else log
    current = inputs_of(in_window(log, now, config.window_seconds, config.version))
    features = [c for c in reference.columns if c != PREDICTION]
    if len(current) and set(features) != set(current.columns) - {PREDICTION}:
        missing = sorted(set(features) - set(current.columns))
        extra = sorted(set(current.columns) - set(features) - {PREDICTION})
        raise BadInput(
            "ColumnsMismatch",
            f"reference columns differ from the model's inputs: missing {missing}, extra {extra}",
        )
    if config.columns:
        features = [c for c in features if c in config.columns]
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
    result: DriftResult,
    now: datetime,
    config: MonitorConfig,
    report_uri: str | None,
    performance: Performance | None = None,
    notes: Sequence[str] = (),
    stability: Stability | None = None,
) -> dict[str, Any]:
    message = "; ".join(m for m in (result.message, *notes) if m) or None
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
        reason="InsufficientData" if result.verdict == "Insufficient" else None,
        message=message[:1024] if message else None,
        performance=performance.figures or None if performance else None,
        labelled_samples=performance.samples if performance else None,
        performance_window_end=_label_cutoff(config, now) if performance else None,
        importance_stability=stability.value if stability else None,
    )
    # explicit nulls clear stale fields from a previous run in a merge patch
    return status.model_dump(mode="json", by_alias=True)


def _label_cutoff(config: MonitorConfig, now: datetime) -> datetime:
    delay = config.performance.label_delay_seconds if config.performance else 3600.0
    return now - timedelta(seconds=delay)


def performance_of(config: MonitorConfig, log: pd.DataFrame, now: datetime) -> Performance | None:
    """Figures over predictions old enough for their labels (None when no label was ever posted);
    the labelled rows keep their inputs for importance stability."""
    labels = read_stream(config.inference_log_uri, "labels")
    if labels.empty and config.performance is None:
        return None
    settings = config.performance or PerformanceSettings()
    window = in_window(log, _label_cutoff(config, now), config.window_seconds, config.version, closed=True)
    inputs = [c for c in window.columns if c.startswith(INPUT_PREFIX)]
    return evaluate(window, labels, settings, keep=inputs)


def importance_of(config: MonitorConfig, performance: Performance) -> Stability:
    """Spearman's rho of permutation importances, labelled window vs training time; None (with why)
    below minSamples labelled rows, without the version's training-time importance, or when the
    model cannot be loaded. Never raises: the drift verdict stands without it."""
    if performance.labelled is None or performance.task is None:
        return Stability(None, "not reported: fewer labelled rows than minSamples")
    if not (config.model_name and config.version and config.tracking_uri):
        return Stability(None, "not reported: no registered model version to compare with")
    try:
        baseline, model = _training_importance_and_model(config)
    except Exception as e:  # MLflow down, model refused: the verdict still counts
        return Stability(None, f"not reported: {type(e).__name__}: {e}"[:300])
    if baseline is None:
        return Stability(
            None,
            f"not reported: version {config.version} has no {TAG_FEATURE_IMPORTANCE} tag"
            " (the built-in trainer sets it)",
        )
    labelled = performance.labelled
    x = _plain_categories(inputs_of(labelled.drop(columns=[PREDICTION])))
    y = _labels_like_predictions(labelled, performance.task)
    try:
        current = permutation_importances(model, x, y, performance.task)
    except Exception as e:  # the model rejects the logged inputs: say so, keep the verdict
        return Stability(None, f"not reported: permutation importance failed: {type(e).__name__}: {e}"[:300])
    return rank_correlation(baseline, current)


def _training_importance_and_model(config: MonitorConfig) -> tuple[dict[str, float] | None, Predicts]:
    from mlflow import MlflowClient

    from mlrollout.runtime.loading import load_model
    from mlrollout.runtime.schema import Batch

    assert config.model_name and config.version and config.tracking_uri
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    tags = client.get_model_version(config.model_name, config.version).tags or {}
    baseline = decode(tags.get(TAG_FEATURE_IMPORTANCE))
    if baseline is None:
        return None, Predicts(lambda x: x)
    os.environ.setdefault("MLFLOW_TRACKING_URI", config.tracking_uri)  # the model's download
    loaded = load_model(
        f"models:/{config.model_name}/{config.version}",
        trusted_types=config.trusted_types,
        allow_code=config.allow_code,
    )
    return baseline, Predicts(lambda x: loaded.predictor.predict(Batch(n=len(x), frame=x)))


def _plain_categories(frame: pd.DataFrame) -> pd.DataFrame:
    # the log's text inputs are read as Categoricals; the model was trained on plain values
    categorical = [c for c, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)]
    return frame.astype({c: object for c in categorical}) if categorical else frame


def _labels_like_predictions(labelled: pd.DataFrame, task: str) -> pd.Series:
    """Labels in the predictions' type: /feedback may carry "1" for a model that predicts 1."""
    predictions = pd.to_numeric(labelled[PREDICTION], errors="coerce")
    labels = pd.to_numeric(labelled["label"], errors="coerce")
    if predictions.notna().all() and labels.notna().all():
        return labels.round().astype(int) if task == "classification" else labels.astype(float)
    return labelled["label"].astype(str)


def report_html(
    config: MonitorConfig, reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> str:
    from mlrollout.monitor.evidently_tests import drift_report  # Evidently is slow to import

    columns = features + ([PREDICTION] if PREDICTION in reference and PREDICTION in current else [])
    return str(drift_report(reference, current, config.settings, columns).get_html_str(as_iframe=False))


def report_name(config: MonitorConfig, now: datetime) -> str:
    return f"{config.name}-drift-{now:%Y%m%dT%H%M%SZ}.html"


def write_report(config: MonitorConfig, html: str, now: datetime) -> str | None:
    if not config.report_dir:
        return None
    uri = f"{config.report_dir.rstrip('/')}/{report_name(config, now)}"
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return uri


def log_report(config: MonitorConfig, html: str, verdict: str, now: datetime) -> str:
    """The report as an artifact of the serving version's run (a run of its own when the version has
    none), the version tagged with its address and the verdict; returns the artifact's URI."""
    import tempfile

    from mlflow import MlflowClient

    assert config.model_name and config.version and config.tracking_uri
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    model_version = client.get_model_version(config.model_name, config.version)
    run_id = model_version.run_id
    if not run_id:
        experiment_name = f"mlrollout-monitor/{config.namespace}/{config.name}"
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
        run_id = client.create_run(
            experiment_id, run_name=f"{config.model_name} v{config.version}"
        ).info.run_id
        client.set_terminated(run_id)
    name = report_name(config, now)
    with tempfile.TemporaryDirectory() as folder:  # /tmp is the pod's emptyDir
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(html)
        client.log_artifact(run_id, path, artifact_path=REPORT_ARTIFACT_DIR)
    uri = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{REPORT_ARTIFACT_DIR}/{name}"
    client.set_model_version_tag(config.model_name, config.version, REPORT_TAG, uri)
    client.set_model_version_tag(config.model_name, config.version, VERDICT_TAG, verdict)
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


def serving_of(config: MonitorConfig) -> dict[str, Any]:
    """Latency and throughput per track over the window (or why not), as status fields."""
    tracks, message = serving_health(
        config.prometheus_address, config.namespace, config.model_name, config.window_seconds or 3600.0
    )
    return {
        "serving": [t.model_dump(mode="json", by_alias=True) for t in tracks],
        "servingMessage": message,
    }


def run(config: MonitorConfig, now: datetime) -> dict[str, Any]:
    """The status.monitoring patch for one run (bad input: reason and message, verdict untouched);
    serving figures are reported either way."""
    serving = serving_of(config)
    try:
        log = read_stream(config.inference_log_uri)
        result, reference, current, features = compute(config, now, log)
        performance = performance_of(config, log, now)
    except BadInput as e:
        return {"lastRun": now.isoformat(), "reason": e.reason, "message": str(e)[:1024], **serving}
    notes: list[str] = []
    stability: Stability | None = None
    if performance is not None:
        if performance.message:
            notes.append(f"performance: {performance.message}")
        stability = importance_of(config, performance)
        if stability.message:
            notes.append(f"importance stability {stability.message}")
    report_uri = None
    to_mlflow = bool(config.model_name and config.version and config.tracking_uri)
    if result.verdict != "Insufficient" and (config.report_dir or to_mlflow):
        html = report_html(config, reference, current, features)
        report_uri = write_report(config, html, now)
        if to_mlflow:
            try:
                report_uri = log_report(config, html, result.verdict, now)
            except Exception as e:  # the verdict still counts without its report
                notes.append(f"report not logged to MLflow: {type(e).__name__}: {e}"[:300])
    return {**status_of(result, now, config, report_uri, performance, notes, stability), **serving}


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
