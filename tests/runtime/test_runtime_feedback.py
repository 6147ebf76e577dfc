"""/feedback is bounded (issue 7 §1): known outcomes only, values in range, served request ids only
(inference log on), and a shared token when one is configured."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import AppFactory
from mlrollout.runtime import feedback as fb
from mlrollout.runtime.schema import InputError

ROW = [0.1] * 20
OUTCOMES = {"converted": "proportion", "revenue": "mean"}


def series(text: str, metric: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(metric + "{")]


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ({"request_id": "r", "label": 1}, None),
        ({"request_id": "r", "outcome": "converted", "value": 1}, None),
        ({"request_id": "r", "outcome": "converted", "value": 0.0}, None),
        ({"request_id": "r", "outcome": "revenue", "value": 1e12}, None),
        ({"request_id": "r", "outcome": "anything-else"}, "UNKNOWN_OUTCOME"),
        ({"request_id": "r", "outcome": 7}, "UNKNOWN_OUTCOME"),
        ({"request_id": "r", "outcome": "converted", "value": 1.5}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": -1}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": 1e13}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": 10**400}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": float("inf")}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": float("nan")}, "OUT_OF_RANGE"),
        ({"request_id": "r", "outcome": "revenue", "value": True}, "OUT_OF_RANGE"),
        ({"request_id": "r" * 129, "label": 1}, "BAD_REQUEST"),
        ({"request_id": "a\nb", "label": 1}, "BAD_REQUEST"),
        ({"request_id": "r"}, "BAD_REQUEST"),
    ],
)
def test_parse_table(item: dict[str, Any], error: str | None) -> None:
    if error is None:
        (parsed,) = fb.parse(item, OUTCOMES)  # type: ignore[arg-type]
        assert parsed.request_id == "r"
        return
    with pytest.raises(InputError) as exc:
        fb.parse(item, OUTCOMES)  # type: ignore[arg-type]
    assert exc.value.code == error and exc.value.status == 400


@given(st.text(max_size=80))
def test_no_outcome_outside_the_configuration_is_ever_accepted(name: str) -> None:
    try:
        (item,) = fb.parse({"request_id": "r", "outcome": name}, OUTCOMES)  # type: ignore[arg-type]
    except InputError:
        return
    assert item.outcome in {"label", *OUTCOMES}


def test_parse_outcomes_and_token_check() -> None:
    assert fb.parse_outcomes(("converted=proportion", "revenue")) == OUTCOMES
    with pytest.raises(ValueError):
        fb.parse_outcomes(("Bad Name",))
    with pytest.raises(ValueError):
        fb.parse_outcomes(("x=median",))
    assert fb.authorized("", None)
    assert fb.authorized("s3cret", "Bearer s3cret")
    assert not fb.authorized("s3cret", None)
    assert not fb.authorized("s3cret", "Bearer s3cre")
    assert not fb.authorized("s3cret", "Basic s3cret")


def test_unknown_outcomes_create_no_series(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1", feedback_outcomes=("converted=proportion",))
    for i in range(50):
        r = c.post("/feedback", json={"request_id": f"r{i}", "outcome": f"spam-{i}", "value": 1})
        assert r.status_code == 400 and r.json()["error_code"] == "UNKNOWN_OUTCOME", r.text
        assert "converted" in r.json()["message"]  # says what is accepted
    ok = c.post("/feedback", json={"request_id": "r", "outcome": "converted", "value": 1})
    assert ok.status_code == 200
    bad = c.post("/feedback", json={"request_id": "r", "outcome": "converted", "value": 3})
    assert bad.status_code == 400 and bad.json()["error_code"] == "OUT_OF_RANGE"
    text = c.get("/metrics").text
    outcomes = re.findall(r'outcome="([^"]+)"', "\n".join(series(text, "mlrollout_feedback_total")))
    assert outcomes == ["converted"]


def test_batch_with_one_bad_item_is_refused_whole(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1")
    items = [{"request_id": "a", "label": 1}, {"request_id": "b", "outcome": "x"}]
    r = c.post("/feedback", json={"feedback": items})
    assert r.status_code == 400
    assert series(c.get("/metrics").text, "mlrollout_feedback_total") == []


def test_request_ids_are_checked_against_the_inference_log(
    make_client: AppFactory, rf_path: Path, tmp_path: Path
) -> None:
    logdir = str(tmp_path / "log")
    a = make_client(rf_path, model_name="rf", model_version="1", inference_log_uri=logdir)
    b = make_client(rf_path, model_name="rf", model_version="1", inference_log_uri=logdir)
    served_by_a = a.post("/invocations", json={"inputs": [ROW]}).headers["x-request-id"]
    assert a.post("/feedback", json={"request_id": served_by_a, "label": 1}).status_code == 200

    r = a.post("/feedback", json={"request_id": "never-served", "label": 1})
    assert r.status_code == 404 and r.json()["error_code"] == "UNKNOWN_REQUEST_ID", r.text
    # Another replica knows the id once A's rows reach the shared log.
    a.app.state.runtime.log.flush()  # type: ignore[attr-defined]
    b.app.state.runtime.requests.min_rescan_seconds = 0  # type: ignore[attr-defined]
    assert b.post("/feedback", json={"request_id": served_by_a, "label": 0}).status_code == 200
    assert b.post("/feedback", json={"request_id": "never-served", "label": 0}).status_code == 404
    counted = series(a.get("/metrics").text, "mlrollout_feedback_total")
    assert len(counted) == 1 and counted[0].endswith(" 1.0"), counted


def test_without_an_inference_log_ids_are_not_checked(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1")
    assert c.post("/feedback", json={"request_id": "anything", "label": 1}).status_code == 200


def test_shared_token(make_client: AppFactory, rf_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = "t0k3n-from-a-secret"
    c = make_client(rf_path, model_name="rf", model_version="1", feedback_token=token)
    body = {"request_id": "r", "label": 1}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": token}):
        r = c.post("/feedback", json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error_code"] == "UNAUTHENTICATED" and r.headers["www-authenticate"] == "Bearer"
        assert token not in r.text
    assert c.post("/feedback", json=body, headers={"authorization": f"Bearer {token}"}).status_code == 200
    # Scoring stays open: the token guards only the door to truth.
    assert c.post("/invocations", json={"inputs": [ROW]}).status_code == 200
    assert token not in c.get("/metrics").text + c.get("/config").text + caplog.text
