"""The compact report fits a termination message; tags and the HTML page carry the rest."""

from __future__ import annotations

import json

from mlrollout.api.gate import GateReport
from mlrollout.gate import report
from mlrollout.gate.results import CheckResult


def many_checks(n: int) -> list[CheckResult]:
    return [
        CheckResult(
            f"metric:precision[segment_{i} == 'x' and tenure > {i}]",
            "passed" if i % 3 else "failed",
            0.5,
            0.7,
            "m" * 400,
        )
        for i in range(n)
    ]


def test_termination_message_stays_under_4_kib_and_keeps_the_failures() -> None:
    results = many_checks(64)
    rep = report.compact("failed", "churn", "8", results, reason="r" * 2000)
    text = report.termination_message(rep)
    assert len(text.encode()) <= 4096
    back = GateReport.model_validate(json.loads(text))
    assert back.outcome == "failed" and back.version == "8"
    assert back.checks and all(c.verdict == "failed" for c in back.checks)
    small = report.compact("passed", "churn", "8", many_checks(2)[1:])
    assert GateReport.model_validate_json(report.termination_message(small)) == small


def test_tags() -> None:
    assert (
        report.tag_key("metric:precision[plan == 'premium']")
        == "mlrollout.gate.metric.precision.plan_premium"
    )
    assert report.tag_key("leakage:overlap") == "mlrollout.gate.leakage.overlap"
    rep = report.compact("failed", "churn", "8", many_checks(2), report_uri="runs:/r/x/report.html")
    tags = report.version_tags(rep, "2026-01-01T00:00:00Z")
    assert tags["mlrollout.gate"] == "failed"
    assert tags["mlrollout.gate.metric.precision.segment_0_x_and_tenure_0"] == "failed"
    assert tags["mlrollout.gate.report_uri"] == "runs:/r/x/report.html"
    assert GateReport.model_validate_json(tags["mlrollout.gate.report"]) == rep
    err = report.version_tags(report.compact("error", "churn", "8", [], reason="MLflow down"), "t")
    assert "mlrollout.gate" not in err and err["mlrollout.gate.error"] == "MLflow down"


def test_html_page_escapes_and_lists_every_check() -> None:
    results = [CheckResult("metric:f1[x == '<b>']", "failed", 0.1, 0.5, "<script>", {"rows": 3})]
    rep = report.compact("failed", "churn", "8", results)
    page = report.render_html(report.full(rep, results, {"deployment": "ml/churn"}))
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "metric:f1[x == &#x27;&lt;b&gt;&#x27;]" in page and "failed" in page and "ml/churn" in page
