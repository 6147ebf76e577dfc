"""Fuzz the HTTP API (hypothesis, in-process ASGI app): any body gives a JSON answer, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

COLS = [f"f{i}" for i in range(20)]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.one_of(st.sampled_from(COLS), st.text(max_size=4))
row_lists = st.lists(
    st.lists(st.one_of(st.floats(allow_nan=False), scalars), min_size=0, max_size=22), max_size=3
)
records = st.lists(st.dictionaries(names, scalars, max_size=22), max_size=3)
mlflow_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {"data": row_lists}, optional={"columns": st.one_of(st.lists(names, max_size=22), values)}
            )
        }
    ),
    st.fixed_dictionaries({"dataframe_records": st.one_of(records, values)}),
    st.fixed_dictionaries({"instances": st.one_of(row_lists, records, values)}),
    st.fixed_dictionaries(
        {
            "inputs": st.one_of(
                st.dictionaries(names, st.lists(scalars, max_size=3), max_size=22), row_lists, values
            )
        }
    ),
    st.dictionaries(st.text(max_size=10), values, max_size=3),
    values,
)
tensor = st.fixed_dictionaries(
    {"name": st.one_of(names, scalars), "data": st.one_of(st.lists(scalars, max_size=40), values)},
    optional={
        "shape": st.lists(st.integers(-2, 30), max_size=3),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "x"]),
    },
)
v2_bodies = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.one_of(st.lists(tensor, max_size=21), values)}, optional={"id": scalars}
    ),
    values,
)
raw = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode))

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    doc = r.json()
    if r.status_code >= 400:
        assert isinstance(doc["message"], str) and doc["message"] and doc["error_code"]


def post(c: TestClient, path: str, body: Any) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return c.post(path, content=content, headers={"content-type": "application/json"})


def test_fuzz_invocations(rf_client: TestClient) -> None:
    @FUZZ
    @given(body=st.one_of(mlflow_bodies, raw))
    def run(body: Any) -> None:
        check(post(rf_client, "/invocations", body))

    run()
    assert rf_client.get("/ping").status_code == 200


def test_fuzz_v2_infer(rf_client: TestClient) -> None:
    @FUZZ
    @given(body=st.one_of(v2_bodies, raw), name=st.sampled_from(["rf", "other"]))
    def run(body: Any, name: str) -> None:
        check(post(rf_client, f"/v2/models/{name}/infer", body))

    run()


def test_fuzz_feedback(rf_client: TestClient) -> None:
    @FUZZ
    @given(
        body=st.one_of(
            values,
            raw,
            st.fixed_dictionaries(
                {"request_id": scalars}, optional={"label": values, "outcome": scalars, "value": scalars}
            ),
        )
    )
    def run(body: Any) -> None:
        check(post(rf_client, "/feedback", body))

    run()


def test_fuzz_the_open_schema_path(make_client: Any, mixed_path: Any) -> None:
    """A pipeline with strings: the DataFrame path, where the model itself validates some input."""
    import skops.io

    c = make_client(
        mixed_path, trusted_types=tuple(skops.io.get_untrusted_types(file=str(mixed_path / "model.skops")))
    )
    small = st.fixed_dictionaries(
        {}, optional={"plan": scalars, "age": scalars, "spend": scalars, "x": scalars}
    )

    @FUZZ
    @given(
        body=st.one_of(
            st.fixed_dictionaries({"dataframe_records": st.lists(small, max_size=3)}), mlflow_bodies
        )
    )
    def run(body: Any) -> None:
        check(post(c, "/invocations", body))

    run()


def test_every_documented_path_answers_json(rf_client: TestClient) -> None:
    spec = rf_client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        url = path.replace("{name}", "rf")
        for method in ops:
            r = rf_client.request(
                method.upper(), url, content=b"{}", headers={"content-type": "application/json"}
            )
            assert r.status_code < 500, (method, path, r.text)
            if path != "/metrics" and r.content.strip():
                r.json()
