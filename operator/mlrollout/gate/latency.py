"""Latency SLA: the real serving app started on the candidate, timed over single-row requests.

The app runs as a child process (`python -m mlrollout.runtime`, exactly what serving pods run) on a
free loopback port, and is stopped by its PID when the measurement ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mlrollout.api.gate import CheckVerdict
from mlrollout.api.validation import LatencyCheck
from mlrollout.gate.results import CheckResult, CouldNotRun

NAME = "latency:p99"
WARMUP = 5
READY_TIMEOUT = 180.0


def summarize(spec: LatencyCheck, samples_ms: Sequence[float]) -> CheckResult:
    a = np.asarray(samples_ms, dtype=float)
    p50, p95, p99 = (float(np.percentile(a, q)) for q in (50, 95, 99))
    details = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "requests": len(a), "max_ms": float(a.max())}
    message = f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms over {len(a)} requests"
    verdict: CheckVerdict = "failed" if p99 > spec.p99_ms else "passed"
    return CheckResult(NAME, verdict, p99, spec.p99_ms, message, details)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def measure(
    model_dir: str,
    columns: list[str],
    rows: list[list[Any]],
    requests: int,
    trusted_types: Sequence[str] = (),
    workdir: str | None = None,
    allow_code: bool = False,
) -> list[float]:
    """Milliseconds per request, client side, over `requests` sequential single-row requests."""
    if not rows:
        raise CouldNotRun("the holdout has no rows to send")
    work = Path(tempfile.mkdtemp(prefix="gate-latency-", dir=workdir))
    port = _free_port()
    argv = [sys.executable, "-m", "mlrollout.runtime", model_dir, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--cache-dir", str(work / "cache"), "--log-level", "warning"]
    if trusted_types:
        argv += ["--trusted-types", ",".join(trusted_types)]
    if allow_code:  # the user opted in (spec.serving.allowCode): serve the pyfunc like its pods would
        argv.append("--allow-code")
    # Only this process's own settings reach the app: no inherited MLROLLOUT_* (e.g. the pod's host).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLROLLOUT_")}
    log = work / "serving.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60.0) as client:
            _wait_ready(client, proc, log)
            samples = []
            for i in range(WARMUP + requests):
                body = json.dumps({"dataframe_split": {"columns": columns, "data": [rows[i % len(rows)]]}})
                t0 = time.perf_counter()
                r = client.post("/invocations", content=body, headers={"content-type": "application/json"})
                elapsed = (time.perf_counter() - t0) * 1000.0
                if r.status_code != 200:
                    raise CouldNotRun(f"the serving app answered HTTP {r.status_code}: {r.text[:300]}")
                if i >= WARMUP:
                    samples.append(elapsed)
            return samples
    except httpx.HTTPError as exc:
        raise CouldNotRun(f"the serving app did not answer: {exc}; log: {_tail(log)}") from exc
    finally:
        _stop(proc)


def _wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CouldNotRun(f"the serving app exited with code {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise CouldNotRun(f"the serving app was not ready after {READY_TIMEOUT:.0f}s: {_tail(log)}")
