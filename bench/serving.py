"""`make bench-serving`: our runtime against `mlflow models serve` and a KServe ModelServer.

Same models (a 50-tree random forest and a logistic regression, 20 features, saved once by MLflow
with skops), same load generator (bench.loadgen: closed loop, one row per request), concurrency 1,
16 and 64, one server at a time (two cores), all in one run. Prints requests/s, p50 and p99 per
server and our ratio to each peer; saves the figures as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import loadgen

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MLROLLOUT_CACHE", Path.home() / ".cache" / "mlrollout"))
PEER_VENV = CACHE / "bench-venv"
TREE = "sklearn.tree._tree.Tree"
N_FEATURES = 20
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_models(workdir: Path) -> dict[str, Path]:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(5000, N_FEATURES)), columns=COLUMNS)
    y = ((x.f0 + x.f1 * x.f2 + rng.normal(scale=0.5, size=len(x))) > 0).astype(int)
    out = {}
    for name, est in (
        ("random_forest", RandomForestClassifier(50, random_state=0, n_jobs=None)),
        ("logistic_regression", LogisticRegression(max_iter=1000)),
    ):
        est.fit(x, y)
        path = workdir / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(
                est,
                str(path),
                signature=infer_signature(x, est.predict(x)),
                serialization_format="skops",
                skops_trusted_types=[TREE],
            )
        out[name] = path
    return out


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_path: str
    path: str
    body: bytes
    env: dict[str, str] | None = None


def row() -> list[float]:
    return [round(0.05 * i - 0.4, 3) for i in range(N_FEATURES)]


def servers(model_dir: Path, port: int, workers: int) -> list[Server]:
    split = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [row()]}}).encode()
    py = sys.executable
    out = [
        Server(
            "mlrollout",
            [
                py,
                "-m",
                "mlrollout.runtime",
                str(model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--trusted-types",
                TREE,
                "--log-level",
                "warning",
                "--cache-dir",
                tempfile.mkdtemp(prefix="mlr-bench-"),
            ],
            "/ping",
            "/invocations",
            split,
            env={"MLROLLOUT_HOST": "127.0.0.1"},
        ),
        Server(
            "mlflow",
            [
                str(Path(py).parent / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workers),
            ],
            "/ping",
            "/invocations",
            split,
            env={"MLFLOW_ENABLE_TELEMETRY": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
        ),
    ]
    peer_py = PEER_VENV / "bin" / "python"
    if peer_py.exists():
        out.append(
            Server(
                "kserve",
                [
                    str(peer_py),
                    str(REPO / "bench" / "kserve_peer.py"),
                    "--model-file",
                    str(model_dir / "model.skops"),
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                "/v1/models/model",
                "/v1/models/model:predict",
                json.dumps({"instances": [row()]}).encode(),
            )
        )
    return out


def start(server: Server, port: int, logdir: Path, timeout: float = 180) -> subprocess.Popen[bytes]:
    log = (logdir / f"{server.name}-{port}.log").open("wb")
    # `mlflow models serve` execs `uvicorn` by name: the server's own bin directory goes first on PATH.
    path = f"{Path(server.argv[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"), PATH=path, **(server.env or {}))
    proc = subprocess.Popen(
        server.argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(logdir), start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({proc.returncode}); see {log.name} in {logdir}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}{server.ready_path}", timeout=2) as r,
        ):
            if r.status == 200:
                return proc
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f}s; see {logdir}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def check_answer(port: int, server: Server) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{server.path}",
        data=server.body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["predictions"]


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="mlr-bench-"))
    say(f"building models in {work}")
    model_dirs = build_models(work)
    results: list[dict[str, Any]] = []
    for model_name, model_dir in model_dirs.items():
        if args.models and model_name not in args.models:
            continue
        for name in [s.name for s in servers(model_dir, 0, args.workers)]:
            if args.servers and name not in args.servers:
                continue
            port = free_port()
            server = next(s for s in servers(model_dir, port, args.workers) if s.name == name)
            say(f"{model_name}: starting {server.name} on 127.0.0.1:{port}")
            try:
                proc = start(server, port, work)
            except RuntimeError as exc:
                say(f"  skipped: {exc}")
                continue
            try:
                answer = check_answer(port, server)
                for c in args.concurrency:
                    res = loadgen.run_sync(
                        "127.0.0.1",
                        port,
                        server.path,
                        server.body,
                        c,
                        seconds=args.seconds,
                        max_requests=args.max_requests,
                        warmup_seconds=args.warmup,
                    )
                    s = res.summary() | {"server": server.name, "model": model_name, "answer": answer}
                    results.append(s)
                    say(
                        f"  c={c:<3} {s['rps']:>9.1f} req/s  p50 {s['p50_ms']:7.2f} ms"
                        f"  p99 {s['p99_ms']:7.2f} ms  errors {s['errors']}"
                    )
            finally:
                stop(proc)
    ratios = compute_ratios(results)
    report = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "workers": args.workers,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "rows_per_request": 1,
            "load_generator": "bench.loadgen (asyncio, keep-alive)",
        },
        "results": results,
        "ratios": ratios,
    }
    return report


def compute_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours = {(r["model"], r["concurrency"]): r for r in results if r["server"] == "mlrollout"}
    out = []
    for r in results:
        if r["server"] == "mlrollout" or (r["model"], r["concurrency"]) not in ours:
            continue
        o = ours[(r["model"], r["concurrency"])]
        out.append(
            {
                "model": r["model"],
                "concurrency": r["concurrency"],
                "peer": r["server"],
                "rps_ratio": round(o["rps"] / r["rps"], 2) if r["rps"] else None,
                "p99_ratio": round(r["p99_ms"] / o["p99_ms"], 2) if o["p99_ms"] else None,
            }
        )
    return out


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'model':<20} {'server':<10} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    ]
    for r in report["results"]:
        lines.append(
            f"{r['model']:<20} {r['server']:<10} {r['concurrency']:>4} {r['rps']:>9.1f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6}"
        )
    lines.append("")
    lines.append(f"{'model':<20} {'conc':>4} {'vs peer':<10} {'req/s ratio':>11} {'p99 peer/ours':>14}")
    for x in report["ratios"]:
        lines.append(
            f"{x['model']:<20} {x['concurrency']:>4} {x['peer']:<10} {x['rps_ratio']!s:>11} "
            f"{x['p99_ratio']!s:>14}"
        )
    return "\n".join(lines)


def ensure_peer_venv(say: Callable[[str], None]) -> None:
    """KServe pins its own dependencies: it lives in its own virtualenv, created once."""
    py = PEER_VENV / "bin" / "python"
    if (
        py.exists()
        and subprocess.run(
            [str(py), "-c", "import kserve, skops, sklearn"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return
    import sklearn

    say(f"creating the KServe peer virtualenv in {PEER_VENV} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    proc = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "kserve==0.21.*",
            f"scikit-learn=={sklearn.__version__}",
            "skops==0.16.*",
        ],
        check=False,
    )
    if proc.returncode != 0:
        say("  could not install kserve; the KServe peer is skipped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2, help="worker processes for every server")
    p.add_argument("--models", nargs="*", default=[])
    p.add_argument("--servers", nargs="*", default=[])
    p.add_argument("--no-peer-install", action="store_true")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    if not args.no_peer_install:
        ensure_peer_venv(print)
    report = run(args)
    print()
    print(table(report))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serving-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    (out / "serving-latest.json").write_text(json.dumps(report, indent=2))
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
