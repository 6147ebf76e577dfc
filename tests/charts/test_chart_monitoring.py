"""The chart's monitoring pieces: the Grafana dashboard ConfigMap (sidecar convention), the
PrometheusRule (gated by values, unit-tested with `promtool test rules`), the ServiceMonitor keeping
the series' own namespace label; and every dashboard query run against the real Prometheus while it
scrapes real runtime processes (stable, a faulty canary, a regressor) and the operator's metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from charts.chart_support import CHART, Obj, by_kind, docs, helm, render, run
from harness.kube import KubeEnv
from harness.procs import Proc, free_port
from harness.services import Prometheus
from mlrollout.handlers import metric_names, metrics
from mlrollout.runtime import metric_names as runtime_names

DASHBOARD_FILE = CHART / "dashboards" / "mlrollout-model-health.json"
DASHBOARD_KEY = "mlrollout-model-health.json"
RULE_TESTS = Path(__file__).parent / "rules"
SERIES_NAME = re.compile(r"\bmlrollout_[a-z0-9_]+\b")
HISTOGRAMS = {
    runtime_names.REQUEST_DURATION_SECONDS,
    runtime_names.BATCH_SIZE,
    runtime_names.PREDICTION_VALUE,
    runtime_names.SHADOW_DURATION_SECONDS,
}
KNOWN_SERIES = (
    set(metric_names.ALL_SERIES)
    | set(runtime_names.ALL_METRICS)
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)
ALERTS = {
    "MLRolloutDataDrift",
    "MLRolloutPredictionDrift",
    "MLRolloutAccuracyLow",
    "MLRolloutPerformanceBelowFloor",
    "MLRolloutMonitorStale",
    "MLRolloutLatencyHigh",
    "MLRolloutErrorRateHigh",
    "MLRolloutReconcileErrors",
}


def dashboard_configmaps(objs: list[Obj]) -> list[Obj]:
    return [o for o in by_kind(objs, "ConfigMap") if DASHBOARD_KEY in o.get("data", {})]


def rendered_dashboard() -> dict[str, Any]:
    (cm,) = dashboard_configmaps(docs(render("grafanaDashboard.enabled=true")))
    found: dict[str, Any] = json.loads(cm["data"][DASHBOARD_KEY])
    return found


def rule_groups(*values: str) -> list[Obj]:
    (rule,) = by_kind(docs(render("prometheusRule.enabled=true", *values)), "PrometheusRule")
    groups: list[Obj] = rule["spec"]["groups"]
    return groups


def alerts(groups: list[Obj]) -> dict[str, Obj]:
    return {r["alert"]: r for g in groups for r in g["rules"]}


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable (label_values unwrapped)."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*([a-z_]+)\)", var["query"]["query"])
            assert m, var
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: run `make system-deps` (Debian package prometheus ships it)")
    return exe


# -- rendering -------------------------------------------------------------------------------------


def test_dashboard_configmap_follows_the_grafana_sidecar_convention() -> None:
    assert not dashboard_configmaps(docs(render()))  # off by default
    objs = docs(
        render(
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.namespace=monitoring",
            "grafanaDashboard.annotations.grafana_folder=MLOps",
        )
    )
    (cm,) = dashboard_configmaps(objs)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "MLOps"}
    assert json.loads(cm["data"][DASHBOARD_KEY]) == json.loads(DASHBOARD_FILE.read_text())
    other = docs(render("grafanaDashboard.enabled=true", "grafanaDashboard.label=dashboards"))
    assert dashboard_configmaps(other)[0]["metadata"]["labels"]["dashboards"] == "1"


def test_dashboard_has_the_panels_people_need() -> None:
    d = rendered_dashboard()
    panels = [p for p in d["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and d["uid"] == "mlrollout-model-health"
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    by_title = {p["title"]: p for p in panels}
    exprs = {t: " ".join(x["expr"] for x in p["targets"]) for t, p in by_title.items()}
    perf = exprs["Accuracy / F1 / ROC AUC over time"]
    assert metric_names.PERFORMANCE in perf and 'metric=~"accuracy|f1|roc_auc"' in perf
    assert metric_names.IMPORTANCE_STABILITY in exprs["Importance stability"]
    latency = by_title["Latency p50 / p95 / p99"]["targets"]
    assert [t["expr"].split(",")[0] for t in latency] == [
        f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")
    ]
    assert all("by (le, track, version)" in t["expr"] for t in latency)
    assert "by (track, version)" in exprs["Throughput (requests/s)"]
    assert runtime_names.PREDICTIONS_TOTAL in exprs["Prediction distribution (classes)"]
    assert (
        f"{runtime_names.PREDICTION_VALUE}_bucket"
        in exprs["Prediction distribution (values, p10 / p50 / p90)"]
    )
    assert metric_names.DRIFT_SHARE in exprs["Data drift: share of drifted columns"]
    variables = [v["name"] for v in d["templating"]["list"]]
    assert variables == ["datasource", "namespace", "deployment", "model", "version"]


def test_dashboard_and_rules_use_only_series_the_operator_and_runtime_export() -> None:
    used: dict[str, str] = {}
    for where, expr in dashboard_queries(rendered_dashboard()):
        used |= {name: where for name in SERIES_NAME.findall(expr)}
    for name, rule in alerts(rule_groups()).items():
        used |= {s: name for s in SERIES_NAME.findall(rule["expr"])}
    unknown = {name: where for name, where in used.items() if name not in KNOWN_SERIES}
    assert not unknown, unknown
    assert len(used) >= 20  # the check saw the queries


def test_prometheus_rule_is_gated_and_follows_values() -> None:
    assert not by_kind(docs(render()), "PrometheusRule")
    assert set(alerts(rule_groups())) == ALERTS
    tuned = alerts(
        rule_groups(
            "prometheusRule.latency.enabled=false",
            "prometheusRule.accuracy.min=0.9",
            "prometheusRule.accuracy.metric=f1",
            "prometheusRule.errorRate.max=0.01",
            "prometheusRule.labels.release=kps",
        )
    )
    assert set(tuned) == ALERTS - {"MLRolloutLatencyHigh"}
    assert tuned["MLRolloutAccuracyLow"]["expr"].endswith('{metric="f1"}) < 0.9')
    assert tuned["MLRolloutErrorRateHigh"]["expr"].endswith("> 0.01")
    (rule,) = by_kind(
        docs(render("prometheusRule.enabled=true", "prometheusRule.labels.release=kps")), "PrometheusRule"
    )
    assert rule["metadata"]["labels"]["release"] == "kps"
    for bad in (
        "prometheusRule.latency.quantile=2",
        "prometheusRule.drift.for=soon",
        "grafanaDashboard.labl=x",
    ):
        r = helm(
            "template", "rel", str(CHART), "--set", "prometheusRule.enabled=true", "--set", bad, check=False
        )
        assert r.returncode != 0 and "values don't meet the specifications" in r.stderr, bad


@pytest.mark.integration
def test_dashboard_configmap_is_accepted_by_the_api_server(kube: KubeEnv, namespace: str) -> None:
    (cm,) = dashboard_configmaps(docs(render("grafanaDashboard.enabled=true", namespace=namespace)))
    r = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(cm))
    assert r.returncode == 0 and "(server dry run)" in r.stdout, r.stderr


def test_servicemonitor_keeps_the_series_own_namespace_label() -> None:
    (sm,) = by_kind(docs(render("serviceMonitor.enabled=true")), "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True


def test_alert_rules_pass_promtool_unit_tests(tmp_path: Path) -> None:
    (tmp_path / "mlrollout-rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    tests = sorted(RULE_TESTS.glob("*.test.yaml"))
    assert tests
    for t in tests:
        shutil.copy(t, tmp_path / t.name)
    exe = promtool()
    checked = run([exe, "check", "rules", str(tmp_path / "mlrollout-rules.yaml")])
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = run([exe, "test", "rules", *[str(tmp_path / t.name) for t in tests]], check=False, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each alert is exercised by some test (firing somewhere), so none is untested.
    text = "\n".join(t.read_text() for t in tests)
    assert {a for a in ALERTS if f"alertname: {a}" in text} == ALERTS


def test_promtool_rule_tests_can_fail(tmp_path: Path) -> None:
    """A threshold moved by values no longer matches the expectations: promtool says so."""
    (tmp_path / "mlrollout-rules.yaml").write_text(
        yaml.safe_dump({"groups": rule_groups("prometheusRule.accuracy.min=0.5")})
    )
    shutil.copy(RULE_TESTS / "model-health.test.yaml", tmp_path)
    tested = run([promtool(), "test", "rules", str(tmp_path / "model-health.test.yaml")], check=False)
    assert tested.returncode != 0 and "MLRolloutAccuracyLow" in tested.stdout + tested.stderr


# -- every dashboard query against the real Prometheus -----------------------------------------------


def runtime_models() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "runtime" / "runtime_models.py"
    spec = importlib.util.spec_from_file_location("mlrollout_test_runtime_models", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def start_runtime(workdir: Path, model: Path, *args: str) -> tuple[str, Proc]:
    import httpx

    port = free_port()
    env = {"MLROLLOUT_HOST": "127.0.0.1", "MLROLLOUT_CACHE_DIR": str(workdir / f"cache-{port}")}
    argv = [sys.executable, "-m", "mlrollout.runtime", str(model), "--port", str(port), *args]
    proc = Proc(f"runtime-{port}", argv, workdir / f"runtime-{port}.log", env=env).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: httpx.get(url + "/ping", timeout=2).status_code == 200, timeout=180)
    return url, proc


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Three real runtime processes: classifier v6 stable, classifier v7 canary failing 30 % of requests
    on purpose (the runtime's fault injection), and a regressor; returns name -> URL."""
    models = runtime_models()
    clf = models.forest(tmp_path / "clf")
    reg = models.forest(tmp_path / "reg", regression=True)
    faults = tmp_path / "canary-live.yaml"
    faults.write_text(yaml.safe_dump({"track": "canary", "faults": {"errorRate": 0.3}}))
    common = ("--trusted-types", models.TREE, "--max-delay-ms", "0")
    procs: list[Proc] = []
    try:
        urls = {}
        for key, model, args in (
            ("stable", clf, ("--model-name", "churn", "--model-version", "6", "--track", "stable")),
            ("canary", clf, ("--model-name", "churn", "--model-version", "7", "--config-file", str(faults))),
            ("regressor", reg, ("--model-name", "churn-reg", "--model-version", "1")),
        ):
            urls[key], proc = start_runtime(tmp_path, model, *args, *common)
            procs.append(proc)
        yield urls
    finally:
        for proc in procs:
            proc.stop()


def operator_status(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": "churn"},
        "spec": {"monitoring": {"performance": {"metric": "roc_auc", "min": 0.85}}},
        "status": {
            "phase": "Progressing",
            "modelName": "churn",
            "stableVersion": "6",
            "canaryVersion": "7",
            "weights": {"stable": 75, "canary": 25},
            "conditions": [{"type": "Progressing", "status": "True", "reason": "CanaryStep"}],
            "rollout": {
                "desiredWeight": 25,
                "analysis": {
                    "stage": "step-1",
                    "startedAt": "2026-01-01T00:00:00Z",
                    "tallies": [{"metric": "error-rate", "passed": 1, "inconclusive": 1}],
                },
            },
            "monitoring": {
                "verdict": "Drift",
                "version": "6",
                "lastRun": "2026-01-01T00:00:00Z",
                "samples": 800,
                "labelledSamples": 300,
                "driftShare": 0.5,
                "columns": [
                    {
                        "column": "f0",
                        "test": "ks",
                        "statistic": 0.4,
                        "pValue": 0.0,
                        "effectSize": 0.3,
                        "drifted": True,
                    },
                    {
                        "column": "f1",
                        "test": "ks",
                        "statistic": 0.02,
                        "pValue": 0.7,
                        "effectSize": 0.01,
                        "drifted": False,
                    },
                ],
                "predictionDrift": {
                    "column": "prediction",
                    "test": "chi2",
                    "statistic": 3.0,
                    "drifted": False,
                },
                "performance": {"accuracy": 0.9, "f1": 0.88, "roc_auc": 0.8},
                "importanceStability": 0.95,
            },
        },
    }


def send_traffic(urls: dict[str, str], stop: threading.Event) -> None:
    import httpx

    rows = {"instances": [[0.1 * i for i in range(20)], [-0.1 * i for i in range(20)]]}
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            for url in urls.values():
                c.post(url + "/invocations", json=rows)
            metrics.reconciled(0.01 + 0.05 * (time.monotonic() % 1))
            time.sleep(0.05)


@pytest.mark.services
def test_every_dashboard_query_runs_on_real_prometheus_with_data(
    prometheus: Prometheus, serving: dict[str, str]
) -> None:
    from prometheus_client import start_http_server

    ns = f"dash-{free_port()}"
    body = operator_status(ns)
    metrics.observe(body)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.REGISTRY)
    stop = threading.Event()
    traffic = threading.Thread(target=send_traffic, args=(serving, stop), daemon=True)
    traffic.start()
    try:
        prometheus.add_target(f"127.0.0.1:{port}", job_instance=ns)
        for url in serving.values():
            prometheus.add_target(url.removeprefix("http://"), namespace=ns)
        values = {
            "$namespace": ns,
            "$deployment": "churn",
            "$model": "churn|churn-reg",
            "$version": "1|6|7",
            "$__rate_interval": "30s",
        }

        def substituted(expr: str) -> str:
            for var, val in values.items():
                expr = expr.replace(var, val)
            assert "$" not in expr, expr
            return expr

        def data_flows() -> bool:
            errors = prometheus.query(
                f'sum(rate(mlrollout_requests_total{{namespace="{ns}",code=~"5.."}}[30s])) > 0'
            )
            phase = prometheus.query(f'{metric_names.PHASE}{{namespace="{ns}"}}')
            return bool(errors) and bool(phase)

        deadline = time.monotonic() + 120
        while not data_flows():
            assert time.monotonic() < deadline, "no traffic or operator series in Prometheus within 120 s"
            time.sleep(1)
        time.sleep(3)  # a few more scrapes for rates over every series

        queries = dashboard_queries(rendered_dashboard())
        empty = []
        for where, expr in queries:
            result = prometheus.query(substituted(expr))  # raises unless status == success
            if not result:
                empty.append((where, expr))
        assert not empty, empty
        # The faulty canary shows in the error-rate panel, the stable track does not.
        (error_rate,) = [e for w, e in queries if w.startswith("Error rate")]
        shares = {
            r["metric"]["track"]: float(r["value"][1]) for r in prometheus.query(substituted(error_rate))
        }
        assert shares.get("canary", 0) > 0.1 and shares.get("stable", 0) == 0.0, shares
    finally:
        stop.set()
        traffic.join(timeout=30)
        server.shutdown()
        server.server_close()
        metrics.forget(ns, "churn")
