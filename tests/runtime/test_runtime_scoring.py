"""The scoring path: work after the response (log, mirror) never turns a sent 200 into a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import AppFactory
from mlrollout.runtime.worker import Runtime


def test_failure_after_the_response_is_logged_not_answered(
    make_client: AppFactory, rf_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(self: Runtime, *args: Any) -> None:
        calls.append(args)
        raise RuntimeError("inference log is broken")

    monkeypatch.setattr(Runtime, "after_prediction", broken)
    client = make_client(rf_path, model_name="rf", model_version="3")
    row = {f"f{i}": 0.1 for i in range(20)}
    r = client.post("/invocations", json={"dataframe_records": [row]})
    # A second response start would make the test client raise or replace the answer with a 500.
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    assert len(calls) == 1
    assert "post-response work" in caplog.text
    text = client.get("/metrics").text
    codes = dict(re.findall(r'mlrollout_requests_total\{[^}]*code="(\d+)"[^}]*\} ([0-9.e+]+)', text))
    assert codes.get("200") == "1.0" and "500" not in codes, codes
