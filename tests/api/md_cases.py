"""ModelDeployment specs shared by the model tests and the API-server admission tests.

Each invalid case names the field the rejection must point at (Kubernetes path style).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]

MINIMAL: Spec = {
    "model": {"name": "churn-classifier", "version": "7"},
    "registry": {"trackingUri": "http://mlflow.mlflow:5000"},
    "serving": {"image": "ghcr.io/example/mlrollout-runtime:0.1.0"},
    "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
}

FULL: Spec = {
    "model": {"name": "churn-classifier", "alias": "challenger"},
    "registry": {"trackingUri": "http://mlflow.mlflow:5000", "championAlias": "champion"},
    "serving": {
        "image": "ghcr.io/example/mlrollout-runtime:0.1.0",
        "replicas": 4,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "batching": {"maxBatchSize": 64, "maxDelayMs": 2},
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
    },
    "validation": {
        "dataset": {"uri": "s3://bucket/churn/holdout.parquet", "target": "churned"},
        "metrics": [
            {"name": "roc_auc", "min": 0.84},
            {"name": "precision", "min": 0.7, "segment": "plan == 'p'"},
        ],
        "championChallenger": {"metric": "roc_auc", "minDelta": 0.0},
        "latency": {"p99Ms": 100, "requests": 2000},
        "fairness": {"sensitiveFeatures": ["gender"], "max": 0.1},
        "leakage": {"enabled": True},
    },
    "strategy": {
        "canary": {
            "steps": [
                {"setWeight": 5},
                {"pause": {"duration": "5m"}},
                {"analysis": {}},
                {"setCanaryScale": {"matchTrafficWeight": True}},
                {"setWeight": 25},
                {"pause": {}},
                {"setWeight": 100},
            ]
        }
    },
    "traffic": {"gatewayAPI": {"httpRoute": "churn", "port": 8080}},
    "analysis": {
        "prometheus": {"address": "http://prometheus.monitoring:9090"},
        "interval": "1m",
        "failureLimit": 1,
        "metrics": [
            {"name": "error-rate", "template": "errorRate", "max": 0.01, "failureLimit": 2},
            {"name": "p99-latency", "query": "histogram_quantile(0.99, x)", "max": 0.1},
        ],
    },
    "monitoring": {
        "schedule": "*/15 * * * *",
        "drift": {"pValue": 0.01, "minSamples": 500},
        "performance": {"metric": "roc_auc", "min": 0.8},
    },
    "retraining": {
        "triggers": [{"schedule": {"cron": "0 3 * * 1"}}, {"drift": {"cooldown": "12h"}}],
        "job": {"builtin": {"estimator": "random_forest", "target": "churned"}, "datasetUri": "s3://b/train"},
    },
}

OTHER_STRATEGIES: dict[str, Spec] = {
    "blue-green": {"blueGreen": {"autoPromotion": True, "autoPromotionDelay": "2m"}},
    "shadow": {
        "shadow": {"mirrorPercent": 20, "duration": "1h", "continueWith": {"steps": [{"setWeight": 50}]}}
    },
    "ab-test": {
        "abTest": {
            "metric": {"name": "conversion"},
            "minimumDetectableEffect": 0.02,
            "sticky": {"header": "x-user"},
        }
    },
}


def valid_specs() -> dict[str, Spec]:
    specs = {"minimal": MINIMAL, "full": FULL}
    for name, strategy in OTHER_STRATEGIES.items():
        spec = copy.deepcopy(FULL)
        spec["strategy"] = strategy
        spec.pop("analysis") if name == "blue-green" else None
        specs[name] = spec
    return specs


@dataclass(frozen=True)
class Invalid:
    id: str
    field: str  # where the API server (and the models) must point
    mutate: Callable[[Spec], None]

    def spec(self) -> Spec:
        spec = copy.deepcopy(FULL)
        self.mutate(spec)
        return spec


def _set(path: str, value: Any) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _shadow_continuing_into_analysis(spec: Spec) -> None:
    del spec["analysis"]
    spec["strategy"] = {
        "shadow": {
            "continueWith": {"steps": [{"setWeight": 10}, {"analysis": {}}]},
            "prometheus": {"address": "http://prometheus.monitoring:9090"},
        }
    }


def _ab_test_without_prometheus(spec: Spec) -> None:
    del spec["analysis"]
    spec["strategy"] = {"abTest": {"metric": {"name": "c"}, "minimumDetectableEffect": 0.1}}


def _drop(path: str) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _steps(*steps: dict[str, Any]) -> Callable[[Spec], None]:
    return _set("strategy", {"canary": {"steps": list(steps)}})


INVALID: list[Invalid] = [
    Invalid("replicas-wrong-type", "spec.serving.replicas", _set("serving.replicas", "three")),
    Invalid("replicas-negative", "spec.serving.replicas", _set("serving.replicas", -1)),
    Invalid(
        "trusted-type-not-a-name",
        "spec.serving.trustedTypes[0]",
        _set("serving.trustedTypes", ["sklearn.tree; import os"]),
    ),
    Invalid("two-strategies", "spec.strategy", _set("strategy.shadow", {"duration": "5m"})),
    Invalid("no-strategy", "spec.strategy", _set("strategy", {})),
    Invalid("weight-150", "spec.strategy.canary.steps[0].setWeight", _steps({"setWeight": 150})),
    Invalid(
        "weights-decreasing",
        "spec.strategy.canary.steps",
        _steps({"setWeight": 50}, {"pause": {}}, {"setWeight": 10}),
    ),
    Invalid("step-two-actions", "spec.strategy.canary.steps[0]", _steps({"setWeight": 5, "pause": {}})),
    Invalid("no-steps", "spec.strategy.canary.steps", _steps()),
    Invalid("unknown-router", "spec.traffic", _set("traffic", {"linkerd": {"service": "x"}})),
    Invalid(
        "two-routers", "spec.traffic", _set("traffic", {"replicaRatio": {}, "istio": {"virtualService": "v"}})
    ),
    Invalid("empty-model-name", "spec.model.name", _set("model.name", "")),
    Invalid("model-version-and-alias", "spec.model", _set("model.version", "3")),
    Invalid("model-no-version-nor-alias", "spec.model", _drop("model.alias")),
    Invalid(
        "model-version-not-a-number", "spec.model.version", _set("model", {"name": "m", "version": "latest"})
    ),
    Invalid("missing-image", "spec.serving.image", _drop("serving.image")),
    Invalid("registry-not-http", "spec.registry.trackingUri", _set("registry.trackingUri", "mlflow:5000")),
    Invalid(
        "bad-quantity", "spec.serving.resources.limits.cpu", _set("serving.resources.limits.cpu", "lots")
    ),
    Invalid("malformed-cron", "spec.monitoring.schedule", _set("monitoring.schedule", "every hour")),
    Invalid("cron-four-fields", "spec.monitoring.schedule", _set("monitoring.schedule", "0 * * *")),
    Invalid("bad-interval", "spec.analysis.interval", _set("analysis.interval", "5 minutes")),
    Invalid("failure-limit-negative", "spec.analysis.failureLimit", _set("analysis.failureLimit", -1)),
    Invalid(
        "template-and-query",
        "spec.analysis.metrics[0]",
        _set("analysis.metrics.0", {"name": "e", "template": "errorRate", "query": "up", "max": 1}),
    ),
    Invalid(
        "threshold-min-above-max",
        "spec.analysis.metrics[0]",
        _set("analysis.metrics.0", {"name": "e", "template": "errorRate", "min": 0.5, "max": 0.1}),
    ),
    Invalid(
        "unknown-template",
        "spec.analysis.metrics[0].template",
        _set("analysis.metrics.0", {"name": "e", "template": "cpuUsage", "max": 1}),
    ),
    Invalid(
        "duplicate-metric-names",
        "spec.analysis.metrics",
        _set("analysis.metrics.1", {"name": "error-rate", "query": "up", "max": 1}),
    ),
    Invalid(
        "gate-metric-no-bounds", "spec.validation.metrics[0]", _set("validation.metrics.0", {"name": "f1"})
    ),
    Invalid("fairness-above-one", "spec.validation.fairness.max", _set("validation.fairness.max", 1.5)),
    Invalid("gate-without-dataset", "spec.validation.dataset", _drop("validation.dataset")),
    Invalid("analysis-step-without-analysis", "spec.analysis", _drop("analysis")),
    Invalid("drift-trigger-without-drift-check", "spec.monitoring", _drop("monitoring.drift")),
    Invalid(
        "sticky-with-replica-ratio",
        "spec.strategy.abTest.sticky",
        lambda s: s.update(
            strategy=OTHER_STRATEGIES["ab-test"],
            traffic={"replicaRatio": {}},
        ),
    ),
    Invalid(
        "ab-weight-100",
        "spec.strategy.abTest.candidateWeight",
        _set(
            "strategy",
            {"abTest": {"metric": {"name": "c"}, "minimumDetectableEffect": 0.1, "candidateWeight": 100}},
        ),
    ),
    Invalid(
        "shadow-continue-analysis-without-analysis",
        "spec.analysis",
        lambda s: _shadow_continuing_into_analysis(s),
    ),
    Invalid("ab-test-without-prometheus", "spec.strategy", _ab_test_without_prometheus),
    Invalid(
        "ab-effect-beyond-one",
        "spec.strategy.abTest.minimumDetectableEffect",
        _set(
            "strategy",
            {"abTest": {"metric": {"name": "c"}, "minimumDetectableEffect": 0.2, "baseline": 0.9}},
        ),
    ),
    Invalid(
        "ab-effect-below-zero",
        "spec.strategy.abTest.minimumDetectableEffect",
        _set(
            "strategy",
            {
                "abTest": {
                    "metric": {"name": "c", "higherIsBetter": False},
                    "minimumDetectableEffect": 0.1,
                    "baseline": 0.05,
                }
            },
        ),
    ),
    Invalid(
        "auto-promotion-delay-without-auto",
        "spec.strategy.blueGreen.autoPromotionDelay",
        _set("strategy", {"blueGreen": {"autoPromotionDelay": "5m"}}),
    ),
    Invalid(
        "train-command-without-image",
        "spec.retraining.job.image",
        _set("retraining.job", {"command": ["python", "train.py"], "datasetUri": "s3://b/t"}),
    ),
    Invalid(
        "env-duplicate", "spec.serving.env", _set("serving.env", [{"name": "A"}, {"name": "A", "value": "2"}])
    ),
]
