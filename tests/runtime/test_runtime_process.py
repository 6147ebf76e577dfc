"""The real `mlrollout-runtime` process: several workers, totals across them on /metrics, bind address."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import runtime_models as models

from harness.procs import free_port


def test_two_workers_share_metrics_and_port(serve: Any, rf_path: Path) -> None:
    url, _ = serve(
        str(rf_path),
        "--workers",
        "2",
        "--trusted-types",
        models.TREE,
        "--model-name",
        "rf",
        "--model-version",
        "5",
        "--max-batch-size",
        "16",
        "--max-delay-ms",
        "1",
    )
    body = {"instances": [[0.5] * 20]}
    with httpx.Client(base_url=url, timeout=10) as c, ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: c.post("/invocations", json=body).status_code, range(200)))
        assert codes == [200] * 200
        assert (
            c.post("/invocations", content=b"{", headers={"content-type": "application/json"}).status_code
            == 400
        )
        text = c.get("/metrics").text
    assert 'mlrollout_requests_total{code="200",model="rf",track="stable",version="5"} 200.0' in text
    assert 'mlrollout_requests_total{code="400",model="rf",track="stable",version="5"} 1.0' in text
    m = re.search(r'mlrollout_batch_size_sum\{model="rf",track="stable",version="5"\} ([0-9.]+)', text)
    assert m and float(m.group(1)) == 200.0
    assert 'mlrollout_model_ready{model="rf",track="stable",version="5"} 1.0' in text
    pids = set(re.findall(r'pid="(\d+)"', text))
    assert not pids or len(pids) <= 2


def test_refuses_to_start_on_an_untrusted_model(rf_path: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlrollout.runtime",
            str(rf_path),
            "--port",
            str(free_port()),
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"MLROLLOUT_HOST": "127.0.0.1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "not trusted: ['sklearn.tree._tree.Tree']" in proc.stderr


def test_binds_the_address_in_mlrollout_host(serve: Any, lr_path: Path) -> None:
    url, _ = serve(str(lr_path), "--host", "0.0.0.0", env={"MLROLLOUT_HOST": "127.0.0.1"})
    assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}


def test_every_operator_track_is_accepted_by_the_runtime_parser() -> None:
    from mlrollout.api import names
    from mlrollout.runtime.__main__ import parse_args
    from mlrollout.runtime.config import Settings

    assert set(names.TRACKS) >= {
        names.TRACK_STABLE,
        names.TRACK_CANARY,
        names.TRACK_PREVIEW,
        names.TRACK_SHADOW,
    }
    for track in names.TRACKS:
        assert parse_args(["/m", "--track", track]).track == track
        assert Settings.from_env({"MLROLLOUT_TRACK": track}).track == track


def _loads(log: Path) -> list[str]:
    """pids of the processes that loaded (deserialized) the model, one per load."""
    return re.findall(r"loaded model rf version 5 \(sklearn\) in [0-9.]+s in pid (\d+)", log.read_text())


def test_the_model_is_loaded_once_per_serving_process(serve: Any, rf_path: Path) -> None:
    args = (str(rf_path), "--trusted-types", models.TREE, "--model-name", "rf", "--model-version", "5")
    url, one = serve(*args)
    assert httpx.post(url + "/invocations", json={"instances": [[0.5] * 20]}).status_code == 200
    assert _loads(one.log) == [str(one.pid)]  # the launcher serves what it loaded: no second load

    url, two = serve(*args, "--workers", "2")
    with httpx.Client(base_url=url, timeout=10) as c:
        assert all(
            c.post("/invocations", json={"instances": [[0.5] * 20]}).status_code == 200 for _ in range(20)
        )
    deadline = time.monotonic() + 120  # /ping answered by the first worker; the second may still load
    while len(_loads(two.log)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = _loads(two.log)
    # Each worker loads it once; the launcher only checked it (nothing deserialized there).
    assert len(pids) == 2 and len(set(pids)) == 2 and str(two.pid) not in pids, pids
