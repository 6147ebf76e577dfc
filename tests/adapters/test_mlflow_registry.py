"""The MLflow registry adapter: against a real tracking server, and a loopback server answering garbage."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrollout.adapters.registry.credentials import (
    MlflowCredentials,
    credentials_from_env,
    credentials_from_secret,
)
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel

SECRET = "s3cr3t-p4ss"


def test_unreachable_registry_answers_quickly() -> None:
    registry = MlflowRegistry("http://127.0.0.1:9", timeout=2)
    result = registry.resolve(ModelRef(name="m", version="1"))
    assert isinstance(result, RegistryProblem)
    assert result.reason == "RegistryUnreachable"
    for problem in (
        registry.set_alias("m", "champion", "1"),
        registry.tag_version("m", "1", {"mlrollout.rollout": "promoted"}),
        registry.version_tags("m", "1"),
    ):
        assert isinstance(problem, RegistryProblem)
        assert problem.reason == "RegistryUnreachable"


@pytest.mark.services
def test_resolution_against_real_mlflow(mlflow_server: Any) -> None:
    from mlflow import MlflowClient

    name = f"reg-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source="s3://bucket/m")
    client.set_registered_model_alias(name, "champion", "2")
    registry = MlflowRegistry(mlflow_server.uri)

    assert registry.resolve(ModelRef(name=name, version="3")) == ResolvedModel(name, "3")
    assert registry.resolve(ModelRef(name=name, alias="champion")) == ResolvedModel(
        name, "2", alias="champion"
    )
    for ref, hint in [
        (ModelRef(name=name, version="9"), "no version 9"),
        (ModelRef(name=name, alias="nope"), "no alias 'nope'"),
        (ModelRef(name=f"{name}-absent", version="1"), "no version 1"),
        (ModelRef(name=f"{name}-absent", alias="champion"), "no alias"),
    ]:
        result = registry.resolve(ref)
        assert isinstance(result, RegistryProblem), ref
        assert result.reason == "ModelNotFound", result
        assert hint in result.message


@pytest.mark.services
def test_alias_moves_and_tags_against_real_mlflow(mlflow_server: Any) -> None:
    from mlflow import MlflowClient

    name = f"promo-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source="s3://bucket/m")
    registry = MlflowRegistry(mlflow_server.uri)

    assert registry.set_alias(name, "champion", "1") is None
    assert registry.set_alias(name, "champion", "2") is None
    assert registry.set_alias(name, "champion", "2") is None  # idempotent
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert registry.resolve(ModelRef(name=name, alias="champion")) == ResolvedModel(name, "2", "champion")

    assert registry.version_tags(name, "2") == {}
    tags = {"mlrollout.rollout": "promoted", "mlrollout.rollout.reason": "error-rate 0.001 <= 0.01"}
    assert registry.tag_version(name, "2", tags) is None
    assert registry.tag_version(name, "2", tags) is None  # idempotent
    assert registry.version_tags(name, "2") == tags
    assert client.get_model_version(name, "2").tags == tags
    assert registry.tag_version(name, "2", {"mlrollout.rollout": "rolled_back"}) is None
    assert registry.version_tags(name, "2")["mlrollout.rollout"] == "rolled_back"

    for problem in (
        registry.set_alias(name, "champion", "7"),
        registry.tag_version(name, "7", {"mlrollout.gate": "passed"}),
        registry.version_tags(name, "7"),
        registry.version_tags(f"{name}-absent", "1"),
    ):
        assert isinstance(problem, RegistryProblem)
        assert problem.reason == "ModelNotFound", problem
        assert "no version" in problem.message
    assert client.get_model_version_by_alias(name, "champion").version == "2"


# --- a loopback server that answers whatever the test sets -------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay: float = 0.0
    hang_up: bool = False  # close the connection without an answer


@dataclass
class Odd:
    url: str
    reply: Reply = field(default_factory=Reply)
    seen_auth: list[str | None] = field(default_factory=list)


@pytest.fixture(scope="module")
def odd() -> Iterator[Odd]:
    state = Odd(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.seen_auth.append(self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            reply = state.reply
            if reply.delay:
                time.sleep(reply.delay)
            if reply.hang_up:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _all_calls(registry: MlflowRegistry) -> list[object]:
    return [
        registry.resolve(ModelRef(name="m", version="1")),
        registry.resolve(ModelRef(name="m", alias="champion")),
        registry.set_alias("m", "champion", "1"),
        registry.tag_version("m", "1", {"mlrollout.gate": "passed"}),
        registry.version_tags("m", "1"),
    ]


ODD_REPLIES = [
    ("html from a proxy", Reply(200, b"<html>login</html>", "text/html"), "RegistryError", "not JSON"),
    ("a JSON list", Reply(200, b"[1, 2]"), "RegistryError", "unexpected shape"),
    ("a JSON string", Reply(200, b'"ok"'), "RegistryError", "unexpected shape"),
    ("bad gateway", Reply(502, b"<html>bad gateway</html>", "text/html"), "RegistryUnreachable", "502"),
    ("server error json", Reply(500, b'{"error_code": "INTERNAL_ERROR"}'), "RegistryUnreachable", "500"),
    ("unauthorized", Reply(401, b"denied", "text/plain"), "RegistryError", "credentials"),
    ("forbidden", Reply(403, b'{"error_code": "PERMISSION_DENIED"}'), "RegistryError", "credentials"),
    ("teapot", Reply(418, b"\xff\xfe"), "RegistryError", "418"),
    ("timeout", Reply(delay=3.0), "RegistryUnreachable", "unreachable"),
    ("hang-up", Reply(hang_up=True), "RegistryUnreachable", "unreachable"),
    ("truncated json", Reply(200, b'{"model_version": {"vers'), "RegistryError", "not JSON"),
]


@pytest.mark.parametrize(("case", "reply", "reason", "hint"), ODD_REPLIES, ids=[c[0] for c in ODD_REPLIES])
def test_every_odd_reply_is_a_registry_problem(
    odd: Odd, case: str, reply: Reply, reason: str, hint: str
) -> None:
    odd.reply = reply
    registry = MlflowRegistry(odd.url, timeout=1.0)
    for result in _all_calls(registry):
        assert isinstance(result, RegistryProblem), (case, result)
        assert result.reason == reason, (case, result)
        assert hint in result.message, (case, result)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"model_version": null}',
        b'{"model_version": []}',
        b'{"model_version": {"version": null, "tags": "x"}}',
        b'{"model_version": {"version": "two", "tags": [1]}}',
        b'{"model_version": {"version": true, "tags": [{"value": "v"}]}}',
    ],
)
def test_wrong_shape_json_is_a_registry_problem(odd: Odd, body: bytes) -> None:
    odd.reply = Reply(200, body)
    registry = MlflowRegistry(odd.url, timeout=1.0)
    for ref in (ModelRef(name="m", version="1"), ModelRef(name="m", alias="a")):
        result = registry.resolve(ref)
        assert isinstance(result, RegistryProblem) and result.reason == "RegistryError", result
    tags = registry.version_tags("m", "1")
    assert isinstance(tags, RegistryProblem) and "unexpected shape" in tags.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 204, 301, 400, 404, 409, 429, 500, 503]),
    body=st.one_of(st.binary(max_size=40), json_values.map(lambda v: json.dumps(v).encode())),
)
def test_no_reply_raises(odd: Odd, status: int, body: bytes) -> None:
    odd.reply = Reply(status, body)
    for result in _all_calls(MlflowRegistry(odd.url, timeout=1.0)):
        assert result is None or isinstance(result, (RegistryProblem, ResolvedModel, dict))


def test_credentials_are_sent_and_never_shown(odd: Odd) -> None:
    odd.reply = Reply(200, b'{"model_version": {"version": "4", "tags": []}}')
    odd.seen_auth.clear()
    basic = MlflowCredentials(username="op", password=SECRET)
    assert MlflowRegistry(odd.url, basic).resolve(ModelRef(name="m", version="4")) == ResolvedModel("m", "4")
    assert odd.seen_auth[-1] == "Basic " + base64.b64encode(f"op:{SECRET}".encode()).decode()
    assert MlflowRegistry(odd.url, MlflowCredentials(token=SECRET)).set_alias("m", "champion", "4") is None
    assert odd.seen_auth[-1] == f"Bearer {SECRET}"
    assert MlflowRegistry(odd.url).version_tags("m", "4") == {}
    assert odd.seen_auth[-1] is None

    assert SECRET not in repr(basic) and SECRET not in repr(MlflowRegistry(odd.url, basic))
    odd.reply = Reply(401, b"no")
    refused = MlflowRegistry(odd.url, basic).resolve(ModelRef(name="m", version="4"))
    assert isinstance(refused, RegistryProblem) and SECRET not in refused.message
    # A password inside the tracking URI stays out of messages too.
    down = MlflowRegistry(f"http://op:{SECRET}@127.0.0.1:9", timeout=1).resolve(
        ModelRef(name="m", version="1")
    )
    assert isinstance(down, RegistryProblem) and down.reason == "RegistryUnreachable"
    assert SECRET not in down.message and "127.0.0.1:9" in down.message


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (
            {"data": {"MLFLOW_TRACKING_USERNAME": _b64("op"), "MLFLOW_TRACKING_PASSWORD": _b64(SECRET)}},
            MlflowCredentials("op", SECRET),
        ),
        ({"data": {"MLFLOW_TRACKING_TOKEN": _b64(SECRET + "\n")}}, MlflowCredentials(token=SECRET)),
        ({"data": {"AWS_ACCESS_KEY_ID": _b64("x")}}, None),  # storage credentials only: no MLflow auth
        ({"data": None}, None),
        ({}, None),
    ],
)
def test_credentials_from_secret(secret: dict[str, Any], expected: MlflowCredentials | None) -> None:
    assert credentials_from_secret("mlflow-creds", secret) == expected


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        (None, "'mlflow-creds' not found"),
        ({"data": {"MLFLOW_TRACKING_TOKEN": "%%%not-base64"}}, "MLFLOW_TRACKING_TOKEN is not valid base64"),
        ({"data": {"MLFLOW_TRACKING_USERNAME": _b64("op")}}, "but not MLFLOW_TRACKING_PASSWORD"),
        ({"data": {"MLFLOW_TRACKING_PASSWORD": _b64(SECRET)}}, "but not MLFLOW_TRACKING_USERNAME"),
        ({"data": "garbage"}, "no readable data"),
    ],
)
def test_unusable_credentials_secret_is_a_problem(secret: dict[str, Any] | None, hint: str) -> None:
    problem = credentials_from_secret("mlflow-creds", secret)
    assert isinstance(problem, RegistryProblem) and problem.reason == "RegistryError"
    assert hint in problem.message and SECRET not in problem.message


def test_credentials_from_env() -> None:
    assert credentials_from_env({}) is None
    assert credentials_from_env({"MLFLOW_TRACKING_TOKEN": SECRET, "HOME": "/"}) == MlflowCredentials(
        token=SECRET
    )
    both = credentials_from_env(
        {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p", "MLFLOW_TRACKING_TOKEN": "t"}
    )
    assert isinstance(both, MlflowCredentials)
    assert both.headers()["Authorization"].startswith("Basic ")  # MLflow's precedence
    assert isinstance(credentials_from_env({"MLFLOW_TRACKING_USERNAME": "u"}), RegistryProblem)
