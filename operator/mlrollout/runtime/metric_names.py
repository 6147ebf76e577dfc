"""Names of the runtime's Prometheus metrics and labels: a contract with the operator's analysis
templates. Pure constants, importable without prometheus_client or the server."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "mlrollout"

# Labels carried by every per-model series.
LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
LABEL_TRACK: Final = "track"
LABEL_CODE: Final = "code"
LABEL_CLASS: Final = "class"
LABEL_OUTCOME: Final = "outcome"
LABEL_VARIANT: Final = "variant"
LABEL_SHADOW_VERSION: Final = "shadow_version"
LABEL_RESULT: Final = "result"  # shadow mirroring: ok | error | dropped
LABEL_REASON: Final = "reason"  # why a mirrored request failed (mirroring.ERROR_REASONS)
BASE_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_TRACK)

# Kept import-free: a test pins it equal to mlrollout.api.names.TRACKS, the one list of tracks.
TRACKS: Final = ("stable", "canary", "preview", "shadow")

# Counters (exposed with the _total suffix).
REQUESTS_TOTAL: Final = "mlrollout_requests_total"  # {model,version,track,code}
PREDICTIONS_TOTAL: Final = "mlrollout_predictions_total"  # {model,version,track,class}
SHADOW_REQUESTS_TOTAL: Final = "mlrollout_shadow_requests_total"  # {model,version,track,result}
SHADOW_ERRORS_TOTAL: Final = "mlrollout_shadow_errors_total"  # {model,version,track,reason}
SHADOW_AGREEMENT_TOTAL: Final = "mlrollout_shadow_agreement_total"  # rows where both agreed
SHADOW_COMPARED_TOTAL: Final = "mlrollout_shadow_compared_total"  # rows compared
FEEDBACK_TOTAL: Final = "mlrollout_feedback_total"  # {model,version,track,outcome}
FEEDBACK_VALUE_SUM: Final = "mlrollout_feedback_value_sum_total"  # {model,version,track,outcome}
# Squared values: with the sum and the count, a mean metric's variance (an A/B test of revenue).
FEEDBACK_VALUE_SQUARES: Final = "mlrollout_feedback_value_squares_total"  # {model,version,track,outcome}
INFERENCE_LOG_DROPPED_TOTAL: Final = "mlrollout_inference_log_dropped_total"

# Histograms (exposed as _bucket, _sum, _count).
REQUEST_DURATION_SECONDS: Final = "mlrollout_request_duration_seconds"  # {model,version,track}
BATCH_SIZE: Final = "mlrollout_batch_size"
PREDICTION_VALUE: Final = "mlrollout_prediction_value"  # regression outputs
SHADOW_DURATION_SECONDS: Final = "mlrollout_shadow_duration_seconds"

# Gauges.
MODEL_LOAD_SECONDS: Final = "mlrollout_model_load_seconds"
MODEL_READY: Final = "mlrollout_model_ready"
MODEL_INFO: Final = "mlrollout_model_info"  # {model,version,track,flavor} = 1
# The share of requests this pod mirrors now (live config as applied): the operator's read-back.
MIRROR_FRACTION: Final = "mlrollout_mirror_fraction"  # {model,version,track}

ALL_METRICS: Final = (
    REQUESTS_TOTAL,
    PREDICTIONS_TOTAL,
    SHADOW_REQUESTS_TOTAL,
    SHADOW_ERRORS_TOTAL,
    SHADOW_AGREEMENT_TOTAL,
    SHADOW_COMPARED_TOTAL,
    FEEDBACK_TOTAL,
    FEEDBACK_VALUE_SUM,
    FEEDBACK_VALUE_SQUARES,
    INFERENCE_LOG_DROPPED_TOTAL,
    REQUEST_DURATION_SECONDS,
    BATCH_SIZE,
    PREDICTION_VALUE,
    SHADOW_DURATION_SECONDS,
    MODEL_LOAD_SECONDS,
    MODEL_READY,
    MODEL_INFO,
    MIRROR_FRACTION,
)
