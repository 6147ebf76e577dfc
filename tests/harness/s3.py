"""An S3-compatible server for the tests: moto's server (PyPI), stopped by its PID. It listens on
`host`: loopback, or the pod network's host side so that executed pods reach it too.

It keeps objects in memory and accepts any credentials; clients reach it through the endpoint
variables MLflow and the AWS SDKs read (`env()`).
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.procs import HarnessError, Proc, free_port
from harness.services import QUIET_SERVER_ENV

ACCESS_KEY = "mlrollout-test"
SECRET_KEY = "mlrollout-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    proc: Proc | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client process needs to talk to this server (the gate Job gets it as pod env)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self) -> S3Server:
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            raise HarnessError(
                f"moto_server is not installed in {sys.prefix}: run `make venv` (moto[server])"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self.proc = Proc(
            "s3 (moto)", [str(exe), "-H", self.host, "-p", str(self.port)], self.workdir / "s3.log"
        ).start()
        self.proc.wait_ready(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/", timeout=2) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"


@dataclass
class MLflowOnS3:
    """An MLflow tracking server whose artifacts live in the S3 server (proxied: clients need no keys)."""

    workdir: Path
    s3: S3Server
    bucket: str
    port: int = 0
    proc: Proc | None = None

    @property
    def uri(self) -> str:
        return f"http://{self.s3.host}:{self.port}"

    def start(self) -> MLflowOnS3:
        import os

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.s3.host)
        env = dict(os.environ, **QUIET_SERVER_ENV, **self.s3.env())
        self.proc = Proc(
            "mlflow (artifacts in s3)",
            [
                # this interpreter, whatever the console script's shebang says: boto3 must be importable
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{self.bucket}/mlflow",
                "--host",
                self.s3.host,
                "--port",
                str(self.port),
                # MLflow refuses Host headers it does not know (DNS-rebinding guard).
                "--allowed-hosts",
                f"{self.s3.host},{self.s3.host}:{self.port},localhost,127.0.0.1",
                "--workers",
                "1",
            ],
            self.workdir / "mlflow.log",
            env=env,
        ).start()
        self.proc.wait_ready(self._ready, timeout=120)
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
            return bool(r.read().decode().strip() == "OK")

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def object_keys(self, prefix: str = "mlflow/") -> list[str]:
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]
