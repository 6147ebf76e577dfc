"""Shadow mirroring between real servers: the caller gets only the primary answer, at primary speed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import runtime_models as models

from conftest import AppFactory
from harness.procs import eventually, free_port
from mlrollout.runtime.mirroring import ERROR_REASONS

ROWS = models.data(4, seed=3)[0].to_numpy().tolist()


@pytest.fixture
def slow_shadow() -> Iterator[tuple[str, list[dict[str, Any]], threading.Event]]:
    """A shadow that holds every answer until the test releases it; records what it got."""
    seen: list[dict[str, Any]] = []
    release = threading.Event()

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            release.wait(timeout=30)
            out = json.dumps({"predictions": [1] * len(json.loads(body)["instances"])}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", free_port()), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", seen, release
    release.set()
    srv.shutdown()
    srv.server_close()


def test_mirror_to_a_real_shadow_server(
    make_client: AppFactory, serve: Any, rf_path: Path, lr_path: Path, tmp_path: Path
) -> None:
    shadow_log = tmp_path / "shadow-log"
    shadow_url, _ = serve(
        str(lr_path),
        "--track",
        "shadow",
        "--model-name",
        "lr",
        "--model-version",
        "8",
        "--inference-log",
        str(shadow_log),
    )
    primary_log = tmp_path / "primary-log"
    c = make_client(
        rf_path,
        model_name="rf",
        model_version="3",
        mirror_url=shadow_url,
        mirror_fraction=1.0,
        inference_log_uri=str(primary_log),
    )
    rids = []
    for i in range(6):
        r = c.post("/invocations", json={"instances": ROWS}, headers={"x-request-id": f"req-{i}"})
        assert r.status_code == 200
        rids.append(r.headers["x-request-id"])
    rt = c.app.state.runtime  # type: ignore[attr-defined]

    def compared() -> float:
        text = c.get("/metrics").text
        for line in text.splitlines():
            if line.startswith("mlrollout_shadow_compared_total{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    eventually(lambda: compared() == 6 * len(ROWS))
    text = c.get("/metrics").text
    assert 'mlrollout_shadow_requests_total{model="rf",result="ok",track="stable",version="3"} 6.0' in text
    assert 'mlrollout_shadow_duration_seconds_count{model="rf",track="stable",version="3"} 6.0' in text
    assert "mlrollout_shadow_agreement_total{" in text
    # The shadow counted the mirrored requests under its own track and did not mirror them again.
    import httpx

    shadow_metrics = httpx.get(shadow_url + "/metrics").text
    assert 'mlrollout_requests_total{code="200",model="lr",track="shadow",version="8"} 6.0' in shadow_metrics
    # Both predictions are logged with the same request id.
    rt.log.flush()
    primary = pd.concat(pd.read_parquet(f) for f in (primary_log / "predictions").rglob("*.parquet"))
    assert set(primary[primary.kind == "primary"].request_id) == set(rids)
    assert set(primary[primary.kind == "shadow"].request_id) == set(rids)
    eventually(lambda: bool(list((shadow_log / "predictions").rglob("*.parquet"))), timeout=90)


def test_slow_shadow_does_not_slow_the_caller(
    make_client: AppFactory, rf_path: Path, slow_shadow: tuple[str, list[dict[str, Any]], threading.Event]
) -> None:
    url, seen, release = slow_shadow
    c = make_client(rf_path, model_name="rf", mirror_url=url, mirror_fraction=1.0, mirror_timeout_ms=30000)
    for i in range(3):
        r = c.post("/invocations", json={"instances": ROWS}, headers={"x-request-id": f"s{i}"})
        assert r.status_code == 200 and "predictions" in r.json()
    # All three callers were answered while the shadow still held every reply.
    assert not release.is_set()
    eventually(lambda: len(seen) == 3)
    release.set()
    assert {s["headers"]["x-request-id"] for s in seen} == {"s0", "s1", "s2"}
    assert all(s["headers"]["x-mlrollout-mirrored"] == "1" and s["path"] == "/invocations" for s in seen)


def test_unreachable_shadow_and_sampling(make_client: AppFactory, rf_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    c = make_client(rf_path, model_name="rf", mirror_url=dead, mirror_fraction=0.5)
    for _ in range(40):
        assert c.post("/invocations", json={"instances": ROWS[:1]}).status_code == 200

    eventually(lambda: sample(c, "mlrollout_shadow_requests_total", 'result="error"') > 0)
    time.sleep(0.5)
    errors = sample(c, "mlrollout_shadow_requests_total", 'result="error"')
    assert 5 <= errors <= 35  # about half of 40 sampled, every one failed cleanly
    # ...and says why: nothing listens there
    assert sample(c, "mlrollout_shadow_errors_total", 'reason="connect"') == errors


def test_a_shadow_slower_than_the_mirror_timeout_counts_as_timeouts(
    make_client: AppFactory, rf_path: Path, slow_shadow: tuple[str, list[dict[str, Any]], threading.Event]
) -> None:
    url, _, release = slow_shadow
    c = make_client(rf_path, model_name="rf", mirror_url=url, mirror_fraction=1.0, mirror_timeout_ms=200)
    for _ in range(3):
        assert c.post("/invocations", json={"instances": ROWS}).status_code == 200
    eventually(lambda: sample(c, "mlrollout_shadow_errors_total", 'reason="timeout"') == 3)
    release.set()
    assert sample(c, "mlrollout_shadow_errors_total", 'reason="connect"') == 0
    # Every reason's series exists from the start, so increase() over a window sees its first error.
    lines = [x for x in c.get("/metrics").text.splitlines() if x.startswith("mlrollout_shadow_errors_total{")]
    assert {r for r in ERROR_REASONS if any(f'reason="{r}"' in x for x in lines)} == set(ERROR_REASONS)


def sample(c: Any, name: str, label: str) -> float:
    """One series of the app's /metrics, picked by a label (0 when absent)."""
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_agreement_rule() -> None:
    from mlrollout.runtime.mirroring import agree

    assert (
        agree(1, 1) and agree("a", "a") and agree(0.1 + 0.2, 0.3) and not agree(1, 0) and not agree(1.0, 1.1)
    )
