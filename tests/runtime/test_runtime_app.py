"""The HTTP API on real models: MLflow scoring protocol, OIP v2, health, metadata, feedback, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import runtime_models as models
from starlette.testclient import TestClient

from conftest import AppFactory
from mlrollout.runtime.loading import load_model
from mlrollout.runtime.schema import Batch

COLS = models.COLUMNS
X, _ = models.data(8, seed=5)
ROWS = X.to_numpy().tolist()


def expected(path: Path, rows: list[list[float]]) -> list[Any]:
    import skops.io

    est = skops.io.load(str(path / "model.skops"), trusted=[models.TREE])
    import pandas as pd

    return [v.item() if hasattr(v, "item") else v for v in est.predict(pd.DataFrame(rows, columns=COLS))]


def test_every_mlflow_input_format(rf_client: TestClient, rf_path: Path) -> None:
    want = expected(rf_path, ROWS)
    records = [dict(zip(COLS, r, strict=True)) for r in ROWS]
    bodies = [
        {"dataframe_split": {"columns": COLS, "data": ROWS}},
        {"dataframe_split": {"columns": COLS[::-1], "data": [r[::-1] for r in ROWS]}},
        {"dataframe_records": records},
        {"instances": records},
        {"instances": ROWS},
        {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLS)}},
        {"inputs": records},
    ]
    for body in bodies:
        r = rf_client.post("/invocations", json=body)
        assert r.status_code == 200, (body.keys(), r.text)
        assert r.json() == {"predictions": want}
        assert len(r.headers["x-request-id"].split(".")[0]) == 32  # <hex>.<track>.<version>


def test_request_id_is_echoed(rf_client: TestClient) -> None:
    r = rf_client.post("/invocations", json={"instances": ROWS[:1]}, headers={"x-request-id": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"


def test_open_inference_protocol(rf_client: TestClient, rf_path: Path) -> None:
    want = expected(rf_path, ROWS)
    assert rf_client.get("/v2/health/live").json() == {"live": True}
    assert rf_client.get("/v2/health/ready").json() == {"ready": True}
    assert rf_client.get("/v2/models/rf/ready").status_code == 200
    meta = rf_client.get("/v2/models/rf").json()
    assert meta["name"] == "rf" and meta["versions"] == ["3"] and meta["platform"] == "mlflow-sklearn"
    assert [i["name"] for i in meta["inputs"]] == COLS and meta["inputs"][0]["datatype"] == "FP64"
    assert rf_client.get("/v2").json()["name"] == "mlrollout"
    per_column = {
        "id": "q1",
        "inputs": [
            {"name": c, "shape": [len(ROWS)], "datatype": "FP64", "data": [r[i] for r in ROWS]}
            for i, c in enumerate(COLS)
        ],
    }
    one_tensor = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(ROWS), 20],
                "datatype": "FP64",
                "data": [v for r in ROWS for v in r],
            }
        ]
    }
    for body, path in ((per_column, "/v2/models/rf/infer"), (one_tensor, "/v2/models/rf/versions/3/infer")):
        r = rf_client.post(path, json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_name"] == "rf" and out["model_version"] == "3"
        assert out["outputs"][0]["data"] == want and out["outputs"][0]["shape"] == [len(ROWS)]
    assert rf_client.post("/v2/models/rf/infer", json=per_column).json()["id"] == "q1"


def test_health_version_openapi_config(rf_client: TestClient) -> None:
    assert rf_client.get("/ping").status_code == 200
    assert rf_client.get("/health").status_code == 200
    v = rf_client.get("/version").json()
    assert v["model"] == "rf" and v["model_version"] == "3" and v["track"] == "stable"
    spec = rf_client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/infer" in spec["paths"]
    assert rf_client.get("/config").json()["track"] == "stable"


def test_regression_and_value_histogram(make_client: AppFactory, rf_reg_path: Path) -> None:
    c = make_client(rf_reg_path, model_name="reg")
    r = c.post("/invocations", json={"instances": ROWS})
    assert r.status_code == 200 and all(isinstance(v, float) for v in r.json()["predictions"])
    assert (
        'mlrollout_prediction_value_count{model="reg",track="stable",version="0"} 8.0'
        in c.get("/metrics").text
    )


def test_dataframe_path_with_strings_and_ints(make_client: AppFactory, mixed_path: Path) -> None:
    import skops.io

    # Trust only what this file really needs (nothing, for a plain pipeline on skops 0.16).
    untrusted = skops.io.get_untrusted_types(file=str(mixed_path / "model.skops"))
    c = make_client(mixed_path, trusted_types=tuple(untrusted))
    r = c.post(
        "/invocations",
        json={
            "dataframe_records": [
                {"plan": "basic", "age": 30, "spend": 1.5},
                {"plan": "premium", "age": 41, "spend": -1.0},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 2
    bad = c.post("/invocations", json={"dataframe_records": [{"plan": 3, "age": 30, "spend": 1.5}]})
    assert bad.status_code == 400 and "'plan'" in bad.json()["message"]
    bad = c.post("/invocations", json={"dataframe_records": [{"plan": "x", "age": 30.5, "spend": 1.5}]})
    assert bad.status_code == 400 and "'age'" in bad.json()["message"]


ROW = dict(zip(COLS, ROWS[0], strict=True))
BAD: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"instances": [1, 2', 400, "malformed JSON"),
    ("empty body", b"", 400, "empty body"),
    ("not an object", b"[1, 2, 3]", 400, "JSON object"),
    ("no known key", {"rows": []}, 400, "exactly one"),
    ("two keys", {"instances": [ROWS[0]], "inputs": [ROWS[0]]}, 400, "exactly one"),
    ("empty batch", {"dataframe_split": {"columns": COLS, "data": []}}, 400, "empty input"),
    ("empty records", {"dataframe_records": []}, 400, "empty input"),
    (
        "missing column",
        {"dataframe_records": [{k: v for k, v in ROW.items() if k != "f3"}]},
        400,
        "missing columns ['f3']",
    ),
    ("extra column", {"dataframe_records": [{**ROW, "zz": 1.0}]}, 400, "unexpected columns ['zz']"),
    ("wrong type", {"dataframe_records": [{**ROW, "f2": "high"}]}, 400, "column 'f2': expected double"),
    ("bool for double", {"dataframe_records": [{**ROW, "f2": True}]}, 400, "expected double"),
    ("null in required", {"dataframe_records": [{**ROW, "f5": None}]}, 400, "required"),
    ("NaN in required", b'{"instances": [[' + b",".join([b"NaN"] + [b"1.0"] * 19) + b"]]}", 400, "required"),
    ("short row", {"instances": [ROWS[0][:5]]}, 400, "expected 20"),
    ("ragged split", {"dataframe_split": {"columns": COLS, "data": [ROWS[0], ROWS[1][:3]]}}, 400, "row 1"),
    ("nested junk", {"instances": [[{"a": 1}] * 20]}, 400, "expected double"),
    ("columns not strings", {"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}}, 400, "strings"),
    ("inputs ragged", {"inputs": {"f0": [1.0], "f1": [1.0, 2.0]}}, 400, "different lengths"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_4xx(
    rf_client: TestClient, case: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = rf_client.post("/invocations", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    doc = r.json()
    assert message in doc["message"], doc
    assert doc["error_code"]
    # The worker still serves.
    assert rf_client.post("/invocations", json={"instances": ROWS[:1]}).status_code == 200


def test_v2_bad_input(rf_client: TestClient) -> None:
    r = rf_client.post("/v2/models/nope/infer", json={"inputs": []})
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["message"]
    assert rf_client.post("/v2/models/rf/versions/9/infer", json={"inputs": []}).status_code == 404
    assert rf_client.get("/v2/models/nope").status_code == 404
    assert rf_client.post("/v2/models/rf/infer", json={"inputs": []}).status_code == 400
    r = rf_client.post(
        "/v2/models/rf/infer",
        json={"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]},
    )
    assert r.status_code == 400 and "do not fill rows of 20" in r.json()["message"]
    assert rf_client.get("/nowhere").json()["error_code"] == "NOT_FOUND"
    assert rf_client.get("/invocations").status_code == 405


def test_oversized_body(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, max_body_bytes=1000)
    r = c.post("/invocations", json={"instances": ROWS})
    assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["message"]

    def chunks() -> Any:  # no content-length: the limit holds while streaming
        for _ in range(20):
            yield b" " * 100

    r = c.post("/invocations", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_wrong_media_type(rf_client: TestClient) -> None:
    r = rf_client.post("/invocations", content=b"a,b", headers={"content-type": "text/csv"})
    assert r.status_code == 415


def test_feedback_counts_outcomes(make_client: AppFactory, rf_path: Path) -> None:
    rf_client = make_client(rf_path, model_name="rf", model_version="3", feedback_outcomes=("converted",))
    rid = rf_client.post("/invocations", json={"instances": ROWS[:1]}).headers["x-request-id"]
    assert rf_client.post("/feedback", json={"request_id": rid, "label": 1}).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert (
        rf_client.post(
            "/feedback",
            json={
                "feedback": [
                    {"request_id": rid, "outcome": "converted", "value": 12.5},
                    {"request_id": "r2", "outcome": "converted"},
                ]
            },
        ).status_code
        == 200
    )
    text = rf_client.get("/metrics").text
    assert 'mlrollout_feedback_total{model="rf",outcome="label",track="stable",version="3"} 1.0' in text
    assert 'mlrollout_feedback_total{model="rf",outcome="converted",track="stable",version="3"} 2.0' in text
    assert (
        'mlrollout_feedback_value_sum_total{model="rf",outcome="converted",track="stable",version="3"} 12.5'
        in text
    )
    for bad in ({"label": 1}, {"request_id": "x"}, {"request_id": "x", "outcome": "y", "value": "big"}, []):
        r = rf_client.post("/feedback", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["message"]


def test_not_ready_model_is_a_503_not_a_crash(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, trusted_types=())
    assert c.get("/ping").status_code == 503
    assert "not trusted" in c.get("/v2/health/ready").json()["message"]
    assert c.post("/invocations", json={"instances": ROWS[:1]}).status_code == 503
    assert c.get("/v2/health/live").status_code == 200
    assert 'mlrollout_model_ready{model="rf",track="stable",version="0"} 0.0' in c.get("/metrics").text


def test_fast_path_equals_sklearn(rf_path: Path, rf_reg_path: Path) -> None:
    import pandas as pd
    import skops.io

    x, _ = models.data(500, seed=9)
    for path in (rf_path, rf_reg_path):
        m = load_model(str(path), trusted_types=(models.TREE,))
        assert m.predictor.fast is not None  # type: ignore[attr-defined]
        got = m.predictor.predict(Batch(n=len(x), array=x.to_numpy()))
        est = skops.io.load(str(path / "model.skops"), trusted=[models.TREE])
        want = est.predict(pd.DataFrame(x, columns=COLS))
        assert np.allclose(got, want) if got.dtype.kind == "f" else (got == want).all()
        assert not any(math.isnan(v) for v in np.asarray(got, dtype=float))
