"""Numbers no float can hold (huge integers, infinities) are client errors, never a 500 or a 200."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

HUGE = "9" * 400
COLS = [f"f{i}" for i in range(20)]


def _records(value: str) -> bytes:
    row = ", ".join(f'"{c}": {value if c == "f0" else "0.1"}' for c in COLS)
    return f'{{"dataframe_records": [{{{row}}}]}}'.encode()


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1e999", "-1e999", "Infinity", "-Infinity"])
def test_invocations_reject_numbers_out_of_float_range(rf_client: TestClient, value: str) -> None:
    r = rf_client.post("/invocations", content=_records(value), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "f0" in r.json()["message"]


@pytest.mark.parametrize("value", [HUGE, "1e999", "-1e999", "Infinity", "NaN"])
def test_feedback_rejects_non_finite_values(rf_client: TestClient, value: str) -> None:
    body = f'{{"request_id": "r1", "outcome": "label", "value": {value}}}'.encode()
    r = rf_client.post("/feedback", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "finite" in r.json()["message"]
    sums = [
        ln for ln in rf_client.get("/metrics").text.splitlines() if ln.startswith("mlrollout_feedback_value")
    ]
    assert not any(ln.endswith(("+Inf", "inf", "NaN")) for ln in sums), sums
