"""The Prometheus provider against the real Prometheus scraping real serving processes, a stopped
Prometheus, and servers that hang or answer garbage: errors become Samples, never exceptions."""

from __future__ import annotations

import http.server
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.procs import Proc, eventually, free_port
from harness.services import Prometheus
from mlrollout.adapters.metrics.prometheus import PrometheusProvider
from mlrollout.api.loop import Analysis, AnalysisMetric
from mlrollout.rollout import analysis as a

NAMESPACE = "analysis-prom"
MODEL = "shift-clf"
CLASS_ONE = [2.0, 2.0]
CLASS_ZERO = [-2.0, -2.0]


@dataclass
class Fleet:
    stable: str
    canary: str
    ctx: a.QueryContext


def _save_model(path: Path) -> Path:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 2)), columns=["f0", "f1"])
    y = (x.f0 + x.f1 > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, model.predict(x)))
    return path


@pytest.fixture(scope="module")
def fleet(prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two real runtime processes (stable v1, canary v2) scraped by the session's Prometheus."""
    work = tmp_path_factory.mktemp("prom-fleet")
    model = _save_model(work / "model")
    procs: list[Proc] = []
    urls: dict[str, str] = {}
    for track, version in (("stable", "1"), ("canary", "2")):
        port = free_port()
        env = dict(os.environ, MLROLLOUT_HOST="127.0.0.1", MLROLLOUT_CACHE_DIR=str(work / f"cache-{track}"))
        argv = [sys.executable, "-m", "mlrollout.runtime", str(model), "--port", str(port)]
        argv += ["--model-name", MODEL, "--model-version", version, "--track", track, "--max-delay-ms", "0"]
        proc = Proc(f"runtime-{track}", argv, work / f"{track}.log", env=env).start()
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(lambda url=url: httpx.get(url + "/ping", timeout=2).status_code == 200, timeout=120)
        prometheus.add_target(f"127.0.0.1:{port}", namespace=NAMESPACE)
        urls[track] = url
    ctx = a.QueryContext(
        namespace=NAMESPACE,
        name="shift",
        model=MODEL,
        version="2",
        track="canary",
        stable_version="1",
        interval="1m",
    )
    try:
        yield Fleet(urls["stable"], urls["canary"], ctx)
    finally:
        for proc in procs:
            proc.stop()


def _send(url: str, rows: list[list[float]], bad: int = 0) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for row in rows:
            assert c.post("/invocations", json={"instances": [row]}).status_code == 200
        for _ in range(bad):
            assert (
                c.post("/invocations", content=b"{", headers={"content-type": "application/json"}).status_code
                == 400
            )


def metric(template: str, **bounds: float) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": template.lower(), "template": template, **bounds})


@pytest.mark.services
def test_templates_measure_real_serving_processes(prometheus: Prometheus, fleet: Fleet) -> None:
    # increase() cannot count a series' first value: create every series, wait for a scrape, then load.
    for url in (fleet.stable, fleet.canary):
        _send(url, [CLASS_ONE, CLASS_ZERO], bad=1)
    sel = f'{{namespace="{NAMESPACE}",model="{MODEL}"}}'
    eventually(
        lambda: (
            len(prometheus.query(f"mlrollout_predictions_total{sel}")) == 4
            and len(prometheus.query(f"mlrollout_requests_total{sel}")) == 4
        ),
        timeout=60,
        what="both processes scraped with every series",
    )
    time.sleep(2)  # one more scrape, so the warm-up is a sample before the load
    _send(fleet.stable, [CLASS_ONE, CLASS_ZERO] * 30)
    _send(fleet.canary, [CLASS_ONE] * 60, bad=5)
    provider = PrometheusProvider(prometheus.url, timeout=10)
    shift = metric("predictionShift", max=0.2)
    custom = AnalysisMetric.model_validate(
        {
            "name": "bad-input",
            "query": 'sum(increase(mlrollout_requests_total{namespace="{{namespace}}",model="{{model}}",'
            'version="{{version}}",track="{{track}}",code="400"}[{{interval}}]))',
            "max": 0,
        }
    )

    last: list[dict[str, a.Sample]] = []

    def settled() -> dict[str, a.Sample] | None:
        samples = {
            name: provider.sample(name, a.queries(metric(name, max=1e9), fleet.ctx))
            for name in ("errorRate", "requestRate", "latencyP99", "latencyP50")
        }
        samples["predictionShift"] = provider.sample("predictionShift", a.queries(shift, fleet.ctx))
        samples["bad-input"] = provider.sample("bad-input", a.queries(custom, fleet.ctx))
        last[:] = [samples]
        # NaN: a window without new predictions yet (the value was read before the load's scrape)
        done = all(
            s.error is None and s.value is not None and not math.isnan(s.value) for s in samples.values()
        )
        # both tracks scraped after the load: the canary saw 65 requests, its shares are final
        return samples if done and (samples["predictionShift"].requests or 0) >= 60 else None

    try:
        samples = eventually(settled, timeout=90, what="all templates answering")
    except AssertionError as e:
        raise AssertionError(f"{e}; last samples: {last}") from None
    for s in samples.values():
        assert s.error is None, s
    assert samples["errorRate"].value == 0.0  # 4xx are the client's fault, not the model's
    assert samples["requestRate"].value is not None and samples["requestRate"].value > 0
    p99, p50 = samples["latencyP99"].value, samples["latencyP50"].value
    assert p99 is not None and p50 is not None and 0 < p50 <= p99 < 5
    # stable answered half ones, the canary only ones: total variation distance 0.5
    assert samples["predictionShift"].value == pytest.approx(0.5, abs=0.15)

    analysis = Analysis.model_validate(
        {
            "prometheus": {"address": prometheus.url},
            "minRequests": 20,
            "count": 1,
            "metrics": [
                {"name": "s", "template": "predictionShift", "max": 0.2},
                {"name": "e", "template": "errorRate", "max": 0.01},
            ],
        }
    )
    now = datetime.now(UTC)
    measured = [
        a.judge(analysis.metrics[0], analysis, samples["predictionShift"], now),
        a.judge(analysis.metrics[1], analysis, samples["errorRate"], now),
    ]
    assert [m.outcome for m in measured] == ["fail", "pass"]
    run = a.record(a.start("step-1", 1, now), measured, analysis, now)
    assert (
        run.verdict == "Failed"
        and run.message is not None
        and "s: 0." in run.message
        and "> max 0.2" in run.message
    )

    # custom PromQL with templating, read with the templates: its 400s age out of the 1m window
    assert samples["bad-input"].value is not None and samples["bad-input"].value > 0


@pytest.mark.services
def test_no_traffic_is_no_data_not_a_pass(prometheus: Prometheus, fleet: Fleet) -> None:
    provider = PrometheusProvider(prometheus.url)
    quiet = a.QueryContext(**{**fleet.ctx.__dict__, "version": "99"})
    sample = provider.sample("errorRate", a.queries(metric("errorRate", max=0.01), quiet))
    assert sample.error is None and sample.value is None and sample.requests is None
    analysis = Analysis.model_validate(
        {
            "prometheus": {"address": prometheus.url},
            "metrics": [{"name": "e", "template": "errorRate", "max": 0.01}],
        }
    )
    assert a.judge(analysis.metrics[0], analysis, sample, datetime.now(UTC)).outcome == "inconclusive"


@pytest.mark.services
def test_bad_queries_are_errors_with_prometheus_message(prometheus: Prometheus) -> None:
    provider = PrometheusProvider(prometheus.url)
    assert provider.check("sum(rate(up[1m]))") is None
    message = provider.check("sum(rate(up[1m])")
    assert message is not None and "parse error" in message, message
    leftover = provider.check('up{x="{{unknown}}"} + {{unknown}}')
    assert leftover is not None and "parse error" in leftover
    broken = provider.sample("m", a.MetricQueries(value="sum(rate(up[1m]", requests="vector(100)"))
    assert broken.value is None and broken.error is not None and "query failed" in broken.error
    assert "parse error" in broken.error
    many = provider.sample(
        "m",
        a.MetricQueries(
            value="vector(1) or label_replace(vector(2), 'a', 'b', '', '')", requests="vector(1)"
        ),
    )
    assert many.error is not None and "2 series" in many.error
    scalar = provider.sample("m", a.MetricQueries(value="scalar(vector(0.25))", requests="vector(100)"))
    assert scalar == a.Sample("m", 0.25, 100.0, None)
    nan = provider.sample("m", a.MetricQueries(value="vector(0) / 0", requests="vector(100)"))
    assert nan.error is None and nan.value is not None and nan.value != nan.value  # NaN: judged as no data
    text = provider.sample("m", a.MetricQueries(value='"a string"', requests="vector(1)"))
    assert text.error is not None


@pytest.mark.services
def test_stopped_prometheus_is_an_error_outcome(tmp_path: Path) -> None:
    own = Prometheus(tmp_path / "prom").start()
    provider = PrometheusProvider(own.url, timeout=3)
    try:
        assert provider.sample("m", a.MetricQueries("vector(1)", "vector(80)")) == a.Sample(
            "m", 1.0, 80.0, None
        )
        assert provider.is_online()
    finally:
        own.stop()
    sample = provider.sample("m", a.MetricQueries("vector(1)", "vector(80)"))
    assert sample.value is None and sample.error is not None and "unreachable" in sample.error
    assert provider.check("vector(1") is None  # cannot tell: not reported as bad input
    assert not provider.is_online()
    metric_ = AnalysisMetric.model_validate({"name": "e", "query": "vector(1)", "max": 2})
    analysis = Analysis.model_validate(
        {
            "prometheus": {"address": own.url},
            "metrics": [metric_.model_dump(by_alias=True, exclude_none=True)],
        }
    )
    assert a.judge(metric_, analysis, sample, datetime.now(UTC)).outcome == "error"


class _Odd(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if "hang" in self.server.mode:  # type: ignore[attr-defined]
            time.sleep(3)
        body = b"<html>sign in</html>" if "html" in self.server.mode else b'{"data": 1}'  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "hint"), [("hang", "unreachable"), ("html", "not its API"), ("json", "not its API")]
)
def test_hanging_or_foreign_servers_are_error_outcomes(mode: str, hint: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    server.mode = mode  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = PrometheusProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=1)
        sample = provider.sample("m", a.MetricQueries("vector(1)", "vector(1)"))
        assert sample.value is None and sample.error is not None and hint in sample.error, sample
        assert provider.check("vector(1)") is None
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_listening_is_an_error_outcome() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=2)
    sample = provider.sample("m", a.MetricQueries("vector(1)", "vector(1)"))
    assert sample.error is not None and "unreachable" in sample.error
