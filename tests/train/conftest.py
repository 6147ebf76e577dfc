"""Fixtures of the trainer tests. `s3_server` is the gate tests' one (tests/gate/conftest.py): both
belong in tests/conftest.py; until the lead moves it, each directory starts its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.procs import HarnessError
from harness.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server(session_dir: Path, pod_network: Any) -> Iterator[S3Server]:
    host = pod_network.host_ip if pod_network else "127.0.0.1"  # reachable from executed pods too
    try:
        server = S3Server(session_dir / "s3-train", host=host).start()
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)
    yield server
    server.stop()
