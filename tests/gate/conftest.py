"""Fixtures of the gate tests. `s3_server` belongs in tests/conftest.py once other tests need it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.procs import HarnessError
from harness.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server(session_dir: Path) -> Iterator[S3Server]:
    try:
        server = S3Server(session_dir / "s3").start()
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)
    yield server
    server.stop()
