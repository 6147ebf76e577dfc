"""Real services the tests talk to: Prometheus (Debian package) and an MLflow tracking server.

Each listens on `host`: loopback by default, or the pod network's host-side address, where both
host processes (the operator, tests) and executed pods reach it with the same URL."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.procs import HarnessError, Proc, free_port

# Every MLflow server the harness starts: no telemetry, and no job runner (MLflow 3 starts seven
# Huey processes for GenAI jobs we never submit; webhooks go out from the server's own threads).
QUIET_SERVER_ENV = {
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


@dataclass
class Prometheus:
    """Scrapes every second; targets come from file-SD files (the pod runner writes one)."""

    workdir: Path
    port: int = 0
    proc: Proc | None = None
    static: list[dict[str, Any]] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runner_targets(self) -> Path:
        return self.workdir / "targets-runner.json"

    def start(self) -> Prometheus:
        exe = shutil.which("prometheus")
        if exe is None:
            raise HarnessError(
                "prometheus is not installed: run `make system-deps` (Debian package prometheus)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        for f in (self.runner_targets, self.workdir / "targets-static.json"):
            if not f.exists():  # the pod runner may have registered targets already
                f.write_text("[]")
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": "mlrollout",
                    "file_sd_configs": [
                        {"files": [str(self.workdir / "targets-*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        (self.workdir / "prometheus.yml").write_text(json.dumps(cfg))
        self.port = self.port or free_port(self.host)  # a restart keeps its address (and its data)
        self.proc = Proc(
            "prometheus",
            [
                exe,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--web.listen-address={self.host}:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                "--web.enable-lifecycle",
            ],
            self.workdir / "prometheus.log",
        ).start()
        self.proc.wait_ready(lambda: _get(f"{self.url}/-/ready").startswith("Prometheus"), timeout=30)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def restart(self) -> Prometheus:
        """Stopped, then started again on the same port with the same data (an outage that ends)."""
        self.stop()
        return self.start()

    def add_target(self, address: str, **labels: str) -> None:
        self.static.append({"targets": [address], "labels": labels})
        tmp = self.workdir / "targets-static.tmp"
        tmp.write_text(json.dumps(self.static))
        tmp.replace(self.workdir / "targets-static.json")

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        data = json.loads(body)
        if data.get("status") != "success":
            raise HarnessError(f"prometheus query failed: {body}")
        return list(data["data"]["result"])


@dataclass
class MLflowServer:
    """An MLflow tracking server with a sqlite backend and proxied local artifacts."""

    workdir: Path
    port: int = 0
    proc: Proc | None = None
    host: str = "127.0.0.1"

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MLflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        exe = Path(sys.executable).parent / "mlflow"
        if not exe.exists():
            raise HarnessError(f"mlflow is not installed in {sys.prefix}: run `make venv`")
        env = dict(
            os.environ,
            **QUIET_SERVER_ENV,
            # Registry webhooks to the operator under test: it listens on loopback over plain HTTP,
            # which MLflow refuses by default (SSRF guard). Never set these on a shared server.
            MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
            MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
            # MLflow caches the webhook list per event (60 s by default): a hook made by a test would
            # miss the events of its first minute.
            MLFLOW_WEBHOOK_CACHE_TTL="1",
        )
        self.proc = Proc(
            "mlflow",
            [
                str(exe),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.workdir / "artifacts"),
                "--host",
                self.host,
                "--port",
                str(self.port),
                # MLflow refuses Host headers it does not know (DNS-rebinding guard).
                "--allowed-hosts",
                f"{self.host},{self.host}:{self.port},localhost,127.0.0.1",
                "--workers",
                "1",
            ],
            self.workdir / "mlflow.log",
            env=env,
        ).start()
        self.proc.wait_ready(lambda: _get(f"{self.uri}/health").strip() == "OK", timeout=300)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """MLflow keeps the tracking and registry URIs set in-process (a gate or trainer run in the test
    process, a models:/ load) as globals and copies them into os.environ for subprocesses: put both
    back, or later tests (and the operators and pods they start) would talk to a server that is gone."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    saved_env = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())
