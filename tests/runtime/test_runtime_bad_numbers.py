"""Out-of-range numbers are the client's mistake: a 4xx with a JSON body, never a 500 or a 200."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    c = make_client(rf_path, model_name="rf", model_version="1")
    body = '{"request_id": "r1", "outcome": "revenue", "value": ' + value + "}"
    r = c.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert 'outcome="revenue"' not in c.get("/metrics").text
    good = c.post("/feedback", json={"request_id": "r1", "outcome": "revenue", "value": 12.5})
    assert good.status_code == 200
    assert 'outcome="revenue"' in c.get("/metrics").text
