"""Out-of-range numbers are the client's mistake: a 4xx with a JSON body, never a 500 or a 200."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import AppFactory

HUGE = "9" * 400


@pytest.mark.parametrize(
    "body",
    [
        '{"inputs": [[' + HUGE + ", " + ", ".join(["0.0"] * 19) + "]]}",
        '{"inputs": [[1e999, ' + ", ".join(["0.0"] * 19) + "]]}",
        '{"inputs": [[-1e999, ' + ", ".join(["0.0"] * 19) + "]]}",
        '{"inputs": [[Infinity, ' + ", ".join(["0.0"] * 19) + "]]}",
        '{"dataframe_split": {"data": [[' + HUGE + ", " + ", ".join(["0.0"] * 19) + "]]}}",
    ],
)
def test_scoring_refuses_out_of_range_numbers(make_client: AppFactory, rf_path: Path, body: str) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1")
    r = c.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "OUT_OF_RANGE"
    ok = c.post("/invocations", json={"inputs": [[1e30] + [0.0] * 19]})
    assert ok.status_code == 200  # large but in range is a number like any other
    # Beyond float32, where scikit-learn's trees refuse input, the fast path refuses it too.
    too_big = c.post("/invocations", json={"inputs": [[1e300] + [0.0] * 19]})
    assert too_big.status_code == 400 and too_big.json()["error_code"] == "OUT_OF_RANGE"


@pytest.mark.parametrize("value", [HUGE, "1e999", "-1e999", "Infinity", "1e13"])
def test_feedback_refuses_values_that_would_poison_counters(
    make_client: AppFactory, rf_path: Path, value: str
) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1", feedback_outcomes=("revenue",))
    body = '{"request_id": "r1", "outcome": "revenue", "value": ' + value + "}"
    r = c.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert revenue_sum(c.get("/metrics").text) == 0.0  # the series starts at 0 and stays there
    good = c.post("/feedback", json={"request_id": "r1", "outcome": "revenue", "value": 12.5})
    assert good.status_code == 200
    assert revenue_sum(c.get("/metrics").text) == 12.5


def revenue_sum(text: str) -> float:
    (line,) = [
        ln
        for ln in text.splitlines()
        if ln.startswith("mlrollout_feedback_value_sum_total{") and 'outcome="revenue"' in ln
    ]
    return float(line.rsplit(" ", 1)[1])


# From branch runtime-hardening: the same faults through dataframe_records and a NaN feedback value.
COLS = [f"f{i}" for i in range(20)]


def _records(value: str) -> bytes:
    row = ", ".join(f'"{c}": {value if c == "f0" else "0.1"}' for c in COLS)
    return f'{{"dataframe_records": [{{{row}}}]}}'.encode()


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1e999", "-1e999", "Infinity", "-Infinity"])
def test_records_refuse_numbers_out_of_float_range(rf_client: TestClient, value: str) -> None:
    r = rf_client.post("/invocations", content=_records(value), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "OUT_OF_RANGE"


@pytest.mark.parametrize("value", [HUGE, "1e999", "-1e999", "Infinity", "NaN"])
def test_feedback_rejects_non_finite_values(rf_client: TestClient, value: str) -> None:
    body = f'{{"request_id": "r1", "outcome": "label", "value": {value}}}'.encode()
    r = rf_client.post("/feedback", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "finite" in r.json()["message"] or r.json()["error_code"] == "OUT_OF_RANGE"
    sums = [
        ln for ln in rf_client.get("/metrics").text.splitlines() if ln.startswith("mlrollout_feedback_value")
    ]
    assert not any(ln.endswith(("+Inf", "inf", "NaN")) for ln in sums), sums
