"""Analysis, pure: PromQL rendering, one measurement's outcome, the verdict of a run."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrollout.api.loop import Analysis, AnalysisMetric
from mlrollout.api.status import AnalysisRun, Measurement, MeasurementOutcome
from mlrollout.rollout import analysis as a

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CTX = a.QueryContext(
    namespace="ml",
    name="churn",
    model="churn-clf",
    version="7",
    track="canary",
    stable_version="6",
    interval="1m",
)


def spec(*metrics: dict[str, Any], **kw: Any) -> Analysis:
    return Analysis.model_validate(
        {"prometheus": {"address": "http://prom:9090"}, "metrics": list(metrics), **kw}
    )


ERR = {"name": "error-rate", "template": "errorRate", "max": 0.01}
P99 = {"name": "p99", "template": "latencyP99", "max": 0.1}
ANALYSIS = spec(ERR, P99, interval="1m", count=3, minRequests=50)
METRIC = ANALYSIS.metrics[0]


# --- queries ----------------------------------------------------------------------------------------

SEL = '{namespace="ml",model="churn-clf",version="7",track="canary"}'
DURATION = f"mlrollout_request_duration_seconds_bucket{SEL}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "errorRate",
            f'(sum(rate(mlrollout_requests_total{SEL[:-1]},code=~"5.."}}[1m])) or vector(0))'
            f" / sum(rate(mlrollout_requests_total{SEL}[1m]))",
        ),
        ("requestRate", f"sum(rate(mlrollout_requests_total{SEL}[1m]))"),
        (
            "latencyP99",
            f"histogram_quantile(0.99, sum by (le) (rate({DURATION}[1m])))",
        ),
        (
            "latencyP50",
            f"histogram_quantile(0.5, sum by (le) (rate({DURATION}[1m])))",
        ),
    ],
)
def test_template_queries(template: str, expected: str) -> None:
    q = a.queries(AnalysisMetric.model_validate({"name": "m", "template": template, "max": 1}), CTX)
    assert q.value == expected
    assert q.requests == f"sum(increase(mlrollout_requests_total{SEL}[1m]))"


def test_prediction_shift_compares_candidate_with_stable() -> None:
    q = a.queries(
        AnalysisMetric.model_validate({"name": "s", "template": "predictionShift", "max": 0.2}), CTX
    )
    stable = '{namespace="ml",model="churn-clf",version="6",track="stable"}'
    assert (
        f"mlrollout_predictions_total{SEL}" in q.value and f"mlrollout_predictions_total{stable}" in q.value
    )
    assert f"mlrollout_prediction_value_bucket{stable}" in q.value
    assert q.value.count("(") == q.value.count(")")
    no_stable = a.QueryContext(**{**CTX.__dict__, "stable_version": None})
    assert (
        '{namespace="ml",model="churn-clf",track="stable"}'
        in a.queries(
            AnalysisMetric.model_validate({"name": "s", "template": "predictionShift", "max": 0.2}), no_stable
        ).value
    )


def test_custom_query_templating_and_escaping() -> None:
    query = (
        'sum(rate(x{ns="{{namespace}}",d="{{ name }}",v="{{version}}",t="{{track}}",m="{{model}}"}'
        "[{{interval}}]))"
    )
    q = a.queries(AnalysisMetric.model_validate({"name": "c", "query": query, "min": 1}), CTX)
    assert q.value == 'sum(rate(x{ns="ml",d="churn",v="7",t="canary",m="churn-clf"}[1m]))'
    evil = a.QueryContext(**{**CTX.__dict__, "model": 'a"} or vector(1) or x{b="\\'})
    rendered = a.render('x{m="{{model}}"}', evil)
    assert rendered == 'x{m="a\\"} or vector(1) or x{b=\\"\\\\"}'
    assert '"} or' not in rendered.replace('\\"', "")  # the value cannot close the string
    assert a.render("{{stableVersion}} {{unknown}}", CTX) == "6 {{unknown}}"
    assert a.unknown_variables("{{namespace}} {{ foo }} {{bar}} {{foo}}") == ["bar", "foo"]
    assert a.unknown_variables(query) == []


# --- judge ------------------------------------------------------------------------------------------

BOTH = AnalysisMetric.model_validate({"name": "acc", "query": "x", "min": 0.8, "max": 0.99})


@pytest.mark.parametrize(
    ("metric", "sample", "outcome", "message"),
    [
        (METRIC, a.Sample("error-rate", 0.001, 500, None), "pass", "error-rate: 0.001 within max 0.01"),
        (METRIC, a.Sample("error-rate", 0.042, 500, None), "fail", "error-rate: 0.042 > max 0.01"),
        (METRIC, a.Sample("error-rate", 0.01, 50, None), "pass", "0.01 within max 0.01"),  # bounds inclusive
        (BOTH, a.Sample("acc", 0.5, 100, None), "fail", "acc: 0.5 < min 0.8"),
        (BOTH, a.Sample("acc", 0.995, 100, None), "fail", "acc: 0.995 > max 0.99"),
        (BOTH, a.Sample("acc", 0.9, 100, None), "pass", "within min 0.8 and max 0.99"),
        (
            METRIC,
            a.Sample("error-rate", 0.5, 49, None),
            "inconclusive",
            "49 requests in 1m, fewer than minRequests 50",
        ),
        (METRIC, a.Sample("error-rate", None, None, None), "inconclusive", "no requests in 1m"),
        (METRIC, a.Sample("error-rate", 0.0, math.nan, None), "inconclusive", "no requests"),
        (METRIC, a.Sample("error-rate", None, 500, None), "inconclusive", "no data in 1m"),
        (METRIC, a.Sample("error-rate", math.nan, 500, None), "inconclusive", "no data in 1m"),
        (METRIC, a.Sample("error-rate", math.inf, 500, None), "fail", "inf > max 0.01"),
        (
            METRIC,
            a.Sample("error-rate", None, None, "Prometheus unreachable"),
            "error",
            "Prometheus unreachable",
        ),
        (METRIC, a.Sample("error-rate", 0.0, 500, "bad_data: parse error"), "error", "parse error"),
    ],
)
def test_judge(metric: AnalysisMetric, sample: a.Sample, outcome: str, message: str) -> None:
    m = a.judge(metric, ANALYSIS, sample, NOW)
    assert m.outcome == outcome
    assert m.message is not None and message in m.message
    assert m.metric == metric.name and m.at == NOW
    assert m.value is None or math.isfinite(m.value)  # status is JSON
    Measurement.model_validate(m.model_dump(by_alias=True, mode="json"))


def test_min_requests_zero_still_needs_data() -> None:
    zero = spec(ERR, minRequests=0)
    assert a.judge(zero.metrics[0], zero, a.Sample("error-rate", 0.0, 0, None), NOW).outcome == "pass"
    assert (
        a.judge(zero.metrics[0], zero, a.Sample("error-rate", None, 0, None), NOW).outcome == "inconclusive"
    )


def test_long_error_messages_are_clipped() -> None:
    m = a.judge(METRIC, ANALYSIS, a.Sample("error-rate", None, None, "x" * 5000), NOW)
    assert m.message is not None and len(m.message) <= 512


# --- record -----------------------------------------------------------------------------------------


def meas(metric: str, outcome: MeasurementOutcome, value: float | None = 0.5) -> Measurement:
    return Measurement(
        metric=metric, outcome=outcome, value=value, requests=100, at=NOW, message=f"{metric}: {outcome}"
    )


def run_rounds(
    rounds: list[list[tuple[str, MeasurementOutcome]]], analysis: Analysis = ANALYSIS
) -> AnalysisRun:
    run = a.start("step-2", analysis.count, NOW, a.interval_of(analysis))
    for i, outcomes in enumerate(rounds):
        run = a.record(run, [meas(m, o) for m, o in outcomes], analysis, NOW + timedelta(minutes=i + 1))
    return run


def both(o1: MeasurementOutcome, o2: MeasurementOutcome = "pass") -> list[tuple[str, MeasurementOutcome]]:
    return [("error-rate", o1), ("p99", o2)]


@pytest.mark.parametrize(
    ("rounds", "verdict"),
    [
        ([], "Running"),
        ([both("pass")] * 2, "Running"),
        ([both("pass")] * 3, "Passed"),
        ([both("fail")], "Failed"),  # failureLimit 0
        ([both("pass"), both("pass", "fail")], "Failed"),
        ([both("inconclusive")] * 2, "Running"),  # within inconclusiveLimit 2
        ([both("inconclusive")] * 3, "Inconclusive"),
        ([both("error")] * 3, "Error"),
        ([both("error")] * 3 + [both("pass")], "Running"),  # data back: resumes
        ([both("inconclusive"), both("pass"), both("inconclusive"), both("inconclusive")], "Running"),
        ([both("pass")] * 2 + [both("inconclusive")] * 5, "Inconclusive"),  # never a pass
        ([both("pass")] * 2 + [both("inconclusive")] * 2 + [both("pass")], "Passed"),
        ([both("error")] * 3 + [both("fail")], "Failed"),
        ([both("error"), both("inconclusive"), both("error")], "Running"),  # separate budgets
    ],
)
def test_run_verdicts(rounds: list[list[tuple[str, MeasurementOutcome]]], verdict: str) -> None:
    run = run_rounds(rounds)
    assert run.verdict == verdict, run.message
    assert run.taken == len(rounds)


def test_per_metric_limits_override_the_analysis_wide_ones() -> None:
    lenient = spec({**ERR, "failureLimit": 2}, {**P99, "errorLimit": 0}, count=5)
    assert run_rounds([both("fail")] * 2, lenient).verdict == "Running"
    assert run_rounds([both("fail")] * 3, lenient).verdict == "Failed"
    assert run_rounds([both("pass", "error")], lenient).verdict == "Error"
    assert a.limits(lenient.metrics[0], lenient) == (2, 2, 2)
    assert a.limits(lenient.metrics[1], lenient) == (0, 2, 0)


def test_failure_message_names_metric_value_and_threshold() -> None:
    run = a.start("step-2", 3, NOW)
    m = a.judge(METRIC, ANALYSIS, a.Sample("error-rate", 0.042, 500, None), NOW)
    ok = a.judge(ANALYSIS.metrics[1], ANALYSIS, a.Sample("p99", 0.02, 500, None), NOW)
    run = a.record(run, [m, ok], ANALYSIS, NOW)
    assert run.verdict == "Failed"
    assert run.message == "error-rate: 0.042 > max 0.01 (1 failures, limit 0)"
    outage = [
        a.judge(x, ANALYSIS, a.Sample(x.name, None, None, "Prometheus unreachable"), NOW)
        for x in ANALYSIS.metrics
    ]
    run = run_rounds([])
    for _ in range(3):
        run = a.record(run, outage, ANALYSIS, NOW)
    assert run.verdict == "Error"
    assert (
        run.message is not None
        and "error-rate: Prometheus unreachable (3 errors in a row, limit 2)" in run.message
    )


def test_final_runs_do_not_change_and_timing() -> None:
    done = run_rounds([both("pass")] * 3)
    assert a.record(done, [meas("error-rate", "fail")], ANALYSIS, NOW) is done
    assert not a.is_due(done, NOW + timedelta(days=1))
    fresh = a.start("step-2", 3, NOW, timedelta(minutes=1))
    assert fresh.next_measurement_at == NOW + timedelta(minutes=1)
    assert not a.is_due(fresh, NOW) and a.is_due(fresh, NOW + timedelta(minutes=1))
    after = a.record(fresh, [meas("error-rate", "pass")], ANALYSIS, NOW + timedelta(minutes=1))
    assert after.next_measurement_at == NOW + timedelta(minutes=2)
    assert a.start("s", 1, NOW).next_measurement_at == NOW


def test_tallies_follow_spec_order_and_history_is_bounded() -> None:
    run = run_rounds(
        [[("p99", "inconclusive"), ("error-rate", "inconclusive")], both("pass"), both("inconclusive")] * 1
    )
    assert [t.metric for t in run.tallies] == ["error-rate", "p99"]
    long = spec(
        *({"name": f"m{i}", "query": "x", "max": 1} for i in range(15)), count=100, inconclusiveLimit=100
    )
    run = a.start("s", 100, NOW)
    for i in range(10):
        run = a.record(run, [meas(f"m{j}", "pass") for j in range(15)], long, NOW + timedelta(minutes=i))
    assert len(run.history) == a.HISTORY_LIMIT
    AnalysisRun.model_validate(run.model_dump(by_alias=True, mode="json"))


# --- properties -------------------------------------------------------------------------------------

outcomes = st.sampled_from(["pass", "fail", "inconclusive", "error"])
limits_st = st.integers(min_value=0, max_value=4)


@st.composite
def analyses(draw: st.DrawFn) -> Analysis:
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    metrics = []
    for name in names:
        m: dict[str, Any] = {"name": name, "query": "x", "max": 1}
        for key in ("failureLimit", "inconclusiveLimit", "errorLimit"):
            if draw(st.booleans()):
                m[key] = draw(limits_st)
        metrics.append(m)
    return spec(
        *metrics,
        count=draw(st.integers(1, 5)),
        failureLimit=draw(limits_st),
        inconclusiveLimit=draw(limits_st),
        errorLimit=draw(limits_st),
    )


def play(analysis: Analysis, rounds: list[list[str]]) -> list[AnalysisRun]:
    run = a.start("s", analysis.count, NOW)
    seen = [run]
    for i, row in enumerate(rounds):
        ms = [meas(m.name, o) for m, o in zip(analysis.metrics, row, strict=False)]  # type: ignore[arg-type]
        run = a.record(run, ms, analysis, NOW + timedelta(minutes=i))
        seen.append(run)
    return seen


@settings(max_examples=300, deadline=None)
@given(
    analyses(),
    st.lists(st.lists(st.sampled_from(["inconclusive", "error"]), min_size=3, max_size=3), max_size=30),
)
def test_missing_data_never_passes_nor_fails(analysis: Analysis, rounds: list[list[str]]) -> None:
    for run in play(analysis, rounds):
        assert run.verdict in ("Running", "Inconclusive", "Error")


@settings(max_examples=300, deadline=None)
@given(analyses(), st.lists(st.lists(outcomes, min_size=3, max_size=3), max_size=30))
def test_run_invariants(analysis: Analysis, rounds: list[list[str]]) -> None:
    runs = play(analysis, rounds)
    for before, run in itertools.pairwise(runs):
        if before.verdict in ("Passed", "Failed"):
            assert run == before  # final
        assert len(run.history) <= a.HISTORY_LIMIT
        tallies = {t.metric: t for t in run.tallies}
        for metric in analysis.metrics:
            t = tallies[metric.name]
            failure_limit, _, _ = a.limits(metric, analysis)
            if run.verdict == "Passed":
                assert t.passed + t.failed >= analysis.count
                assert t.failed <= failure_limit
        if run.verdict == "Failed" and before.verdict != "Failed":
            assert any(tallies[m.name].failed > a.limits(m, analysis)[0] for m in analysis.metrics)
        if run.verdict == "Error":
            assert any(
                tallies[m.name].consecutive_errors > a.limits(m, analysis)[2] for m in analysis.metrics
            )
        if run.verdict == "Inconclusive":
            assert any(
                tallies[m.name].consecutive_inconclusive > a.limits(m, analysis)[1] for m in analysis.metrics
            )
        # A fail beyond its budget is never hidden behind a pause or a pass.
        if any(tallies[m.name].failed > a.limits(m, analysis)[0] for m in analysis.metrics):
            assert run.verdict == "Failed" or before.verdict == "Passed"
        total = sum(t.passed + t.failed + t.inconclusive + t.errors for t in run.tallies)
        assert total == run.taken * len(analysis.metrics)


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(st.none(), st.floats(allow_nan=True)),
    requests=st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0)),
    error=st.one_of(st.none(), st.text(max_size=20)),
)
def test_judge_is_total(value: float | None, requests: float | None, error: str | None) -> None:
    m = a.judge(METRIC, ANALYSIS, a.Sample("error-rate", value, requests, error), NOW)
    if error is not None:
        assert m.outcome == "error"
    elif (
        not (requests is not None and requests >= ANALYSIS.min_requests) or value is None or math.isnan(value)
    ):
        assert m.outcome == "inconclusive"
    else:
        assert m.outcome == ("fail" if value > 0.01 else "pass")
    Measurement.model_validate_json(m.model_dump_json(by_alias=True))
