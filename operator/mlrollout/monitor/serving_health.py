"""Latency and throughput per track and version, from Prometheus, over the monitor's window.

The runtime exports `mlrollout_request_duration_seconds` (histogram) and `mlrollout_requests_total`
with model, version and track labels (mlrollout.runtime.metric_names); Prometheus adds the pod's
namespace. Nothing raises: no address or an unreachable server gives no figures and a message that
names it; the drift verdict is written either way.
"""

from __future__ import annotations

import math
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from mlrollout.api.monitoring_status import TrackServing
from mlrollout.runtime import metric_names as n

QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
MAX_TRACKS = 16  # MonitoringStatus.serving's max_length
MESSAGE_LIMIT = 512


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def queries(namespace: str, model: str, window_seconds: float) -> dict[str, str]:
    """PromQL per figure, each a vector by version and track."""
    selector = f'{{namespace="{_escape(namespace)}",{n.LABEL_MODEL}="{_escape(model)}"}}'
    window = f"{max(int(window_seconds), 1)}s"
    by = f"{n.LABEL_VERSION}, {n.LABEL_TRACK}"
    out = {
        "requests_per_second": f"sum by ({by}) (rate({n.REQUESTS_TOTAL}{selector}[{window}]))",
    }
    buckets = f"rate({n.REQUEST_DURATION_SECONDS}_bucket{selector}[{window}])"
    for field, q in QUANTILES.items():
        out[field] = f"histogram_quantile({q}, sum by (le, {by}) ({buckets}))"
    return out


def serving_health(
    address: str | None, namespace: str, model: str | None, window_seconds: float, timeout: float = 10.0
) -> tuple[list[TrackServing], str | None]:
    """(figures per track and version, None) or ([], why not)."""
    if not address:
        return [], "no Prometheus address: set spec.monitoring.prometheus or spec.analysis.prometheus"
    if not model:
        return [], "no model name to select the serving series by"
    client = PrometheusConnect(url=address.rstrip("/"), retry=Retry(total=0), timeout=timeout)
    figures: dict[tuple[str, str], dict[str, float | None]] = {}
    for field, promql in queries(namespace, model, window_seconds).items():
        try:
            result: Any = client.custom_query(promql)
        except PrometheusApiClientException as e:
            return [], f"Prometheus at {address}: query failed: {e}"[:MESSAGE_LIMIT]
        except requests.RequestException as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            return [], f"Prometheus at {address} unreachable: {reason}"[:MESSAGE_LIMIT]
        except (ValueError, KeyError, TypeError):
            return [], f"Prometheus at {address} answered with something that is not its API"
        for series in result if isinstance(result, list) else []:
            labels, value = series.get("metric", {}), series.get("value", [None, "NaN"])
            key = (str(labels.get(n.LABEL_TRACK, "")), str(labels.get(n.LABEL_VERSION, "")))
            number = float(value[1])
            figures.setdefault(key, {})[field] = number if math.isfinite(number) else None
    tracks = [
        TrackServing.model_validate({"track": track[:32], "version": version[:64], **values})
        for (track, version), values in sorted(figures.items())
    ]
    if not tracks:
        return [], f"Prometheus at {address} has no requests of model {model} in namespace {namespace}"
    return tracks[:MAX_TRACKS], None
