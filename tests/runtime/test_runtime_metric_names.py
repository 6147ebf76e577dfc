"""The metric names are a contract with the operator's analysis templates: pin them."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from mlrollout.runtime import metric_names as n

EXPECTED = {
    "mlrollout_requests_total",
    "mlrollout_predictions_total",
    "mlrollout_shadow_requests_total",
    "mlrollout_shadow_errors_total",
    "mlrollout_shadow_agreement_total",
    "mlrollout_shadow_compared_total",
    "mlrollout_feedback_total",
    "mlrollout_feedback_value_sum_total",
    "mlrollout_feedback_value_squares_total",
    "mlrollout_inference_log_dropped_total",
    "mlrollout_request_duration_seconds",
    "mlrollout_batch_size",
    "mlrollout_prediction_value",
    "mlrollout_shadow_duration_seconds",
    "mlrollout_model_load_seconds",
    "mlrollout_model_ready",
    "mlrollout_model_info",
    "mlrollout_mirror_fraction",
}


def test_names_are_pinned() -> None:
    assert set(n.ALL_METRICS) == EXPECTED
    assert n.BASE_LABELS == ("model", "version", "track")
    from mlrollout.api import names

    assert n.TRACKS == names.TRACKS == ("stable", "canary", "preview", "shadow")
    for name in n.ALL_METRICS:
        assert re.fullmatch(r"mlrollout_[a-z_]+", name)


def test_module_is_light() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(n))
    imported = {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom) for a in node.names
    }
    assert imported <= {"annotations", "Final"}


def test_exposition_carries_every_name_with_labels(rf_client: TestClient) -> None:
    row = {f"f{i}": 0.1 for i in range(20)}
    assert rf_client.post("/invocations", json={"dataframe_records": [row]}).status_code == 200
    assert rf_client.post("/invocations", json={"dataframe_records": []}).status_code == 400
    text = rf_client.get("/metrics").text
    for name in n.ALL_METRICS:
        if name in (
            n.PREDICTION_VALUE,
            n.FEEDBACK_TOTAL,
            n.FEEDBACK_VALUE_SUM,
            n.INFERENCE_LOG_DROPPED_TOTAL,
            n.SHADOW_REQUESTS_TOTAL,
            n.SHADOW_AGREEMENT_TOTAL,
            n.SHADOW_COMPARED_TOTAL,
        ):
            continue  # labelled series appear once observed; covered by their own tests
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'mlrollout_requests_total{code="200",model="rf",track="stable",version="3"} 1.0' in text
    assert 'mlrollout_requests_total{code="400",model="rf",track="stable",version="3"} 1.0' in text
    assert 'mlrollout_model_ready{model="rf",track="stable",version="3"} 1.0' in text
    assert re.search(
        r'mlrollout_predictions_total\{class="[01]",model="rf",track="stable",version="3"\} 1.0', text
    )
    assert 'mlrollout_request_duration_seconds_bucket{le="0.005",model="rf"' in text
