"""Names of the operator's own Prometheus metrics and labels: a contract with the chart's dashboard
and alert rules (tests check every name those use is one of these). Pure constants."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "mlrollout_operator"

# Labels of every per-object series; monitoring series add model and version.
LABEL_NAMESPACE: Final = "namespace"
LABEL_NAME: Final = "name"
OBJECT_LABELS: Final = (LABEL_NAMESPACE, LABEL_NAME)
LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
MODEL_LABELS: Final = (*OBJECT_LABELS, LABEL_MODEL, LABEL_VERSION)

# Rollout state, one series set per ModelDeployment (dropped with the object).
PHASE: Final = f"{PREFIX}_phase"  # {namespace,name,phase} 1 for the current phase, 0 for the others
INFO: Final = f"{PREFIX}_info"  # {namespace,name,model,stable_version,canary_version} = 1
CANARY_WEIGHT: Final = f"{PREFIX}_canary_weight_percent"  # {namespace,name,kind=desired|actual}
ANALYSIS_MEASUREMENTS: Final = f"{PREFIX}_analysis_measurements"  # {namespace,name,stage,metric,outcome}
ANALYSIS_VERDICT: Final = f"{PREFIX}_analysis_verdict"  # {namespace,name,stage,verdict} = 1
CONDITION: Final = f"{PREFIX}_condition"  # {namespace,name,type,reason} 1 if True, else 0

# Monitoring verdicts read from status.monitoring (written by the monitor Job).
DRIFT_SHARE: Final = f"{PREFIX}_monitoring_drift_share"  # {namespace,name,model,version}
DRIFT_DETECTED: Final = f"{PREFIX}_monitoring_drift_detected"  # 1 when the verdict is Drift
DRIFT_VERDICT: Final = f"{PREFIX}_monitoring_verdict"  # {...,verdict} = 1
COLUMN_DRIFTED: Final = f"{PREFIX}_monitoring_column_drifted"  # {...,column} 1 | 0
COLUMN_STATISTIC: Final = f"{PREFIX}_monitoring_column_statistic"  # {...,column,test}
COLUMN_P_VALUE: Final = f"{PREFIX}_monitoring_column_p_value"  # {...,column}
COLUMN_EFFECT_SIZE: Final = f"{PREFIX}_monitoring_column_effect_size"  # {...,column}
PREDICTION_DRIFTED: Final = f"{PREFIX}_monitoring_prediction_drifted"  # 1 | 0
PREDICTION_STATISTIC: Final = f"{PREFIX}_monitoring_prediction_statistic"  # {...,test}
PERFORMANCE: Final = f"{PREFIX}_monitoring_performance"  # {...,metric=accuracy|f1|roc_auc|mae|...}
# The floor / ceiling the spec sets for that metric (spec.monitoring.performance), for alert rules.
PERFORMANCE_MIN: Final = f"{PREFIX}_monitoring_performance_min"  # {namespace,name,metric}
PERFORMANCE_MAX: Final = f"{PREFIX}_monitoring_performance_max"  # {namespace,name,metric}
IMPORTANCE_STABILITY: Final = f"{PREFIX}_monitoring_importance_stability"
SAMPLES: Final = f"{PREFIX}_monitoring_samples"  # rows in the monitored window
LABELLED_SAMPLES: Final = f"{PREFIX}_monitoring_labelled_samples"
LAST_RUN: Final = f"{PREFIX}_monitoring_last_run_timestamp_seconds"

# Process-wide counters (exposed with the _total suffix) and histograms.
RECONCILES: Final = f"{PREFIX}_reconciles"  # {result=ok|error}
RECONCILE_ERRORS: Final = f"{PREFIX}_reconcile_errors"  # {kind}
RECONCILE_SECONDS: Final = f"{PREFIX}_reconcile_duration_seconds"

# Kinds of reconcile errors: an action failed (retried), a write conflict (decided again), another
# API error, anything else (Kopf retries it with backoff).
# Event-driven scheduling (issue 14): what woke a reconcile, webhook deliveries, registry lookups.
WAKEUPS: Final = f"{PREFIX}_wakeups"  # {cause=change|child|webhook}
WAKE_CHANGE: Final = "change"  # the ModelDeployment itself: spec, request or pause annotation, monitor
WAKE_CHILD: Final = "child"  # a Deployment, Service, Job or CronJob it owns
WAKE_WEBHOOK: Final = "webhook"  # MLflow said the model changed
WAKE_CAUSES: Final = (WAKE_CHANGE, WAKE_CHILD, WAKE_WEBHOOK)
WEBHOOKS: Final = f"{PREFIX}_webhooks"  # {result=accepted|rejected|ignored}
WEBHOOK_RESULTS: Final = ("accepted", "rejected", "ignored")
REGISTRY_LOOKUPS: Final = f"{PREFIX}_registry_lookups"  # resolutions asked of registries since start
API_BACKOFFS: Final = f"{PREFIX}_api_backoffs"  # reconciles put off after an API error, {status}
CACHED_CHILDREN: Final = f"{PREFIX}_cached_children"  # children held in the operator's watch copy

ERROR_ACTION_FAILED: Final = "action_failed"
ERROR_CONFLICT: Final = "conflict"
ERROR_API: Final = "api_error"
ERROR_UNEXPECTED: Final = "unexpected"
ERROR_KINDS: Final = (ERROR_ACTION_FAILED, ERROR_CONFLICT, ERROR_API, ERROR_UNEXPECTED)

PER_OBJECT: Final = (
    PHASE,
    INFO,
    CANARY_WEIGHT,
    ANALYSIS_MEASUREMENTS,
    ANALYSIS_VERDICT,
    CONDITION,
    DRIFT_SHARE,
    DRIFT_DETECTED,
    DRIFT_VERDICT,
    COLUMN_DRIFTED,
    COLUMN_STATISTIC,
    COLUMN_P_VALUE,
    COLUMN_EFFECT_SIZE,
    PREDICTION_DRIFTED,
    PREDICTION_STATISTIC,
    PERFORMANCE,
    PERFORMANCE_MIN,
    PERFORMANCE_MAX,
    IMPORTANCE_STABILITY,
    SAMPLES,
    LABELLED_SAMPLES,
    LAST_RUN,
)
# Every name as scraped (counters with _total, histograms with their series).
ALL_SERIES: Final = (
    *PER_OBJECT,
    f"{RECONCILES}_total",
    f"{RECONCILE_ERRORS}_total",
    f"{RECONCILE_SECONDS}_bucket",
    f"{RECONCILE_SECONDS}_sum",
    f"{RECONCILE_SECONDS}_count",
)
