"""The code stays layered, typed and lint-clean: `make lint` as part of the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("what", "argv", "cwd"),
    [
        ("layers (import-linter)", [str(BIN / "lint-imports"), "--config", "../pyproject.toml"], "operator"),
        ("types of the package (mypy --strict)", [str(BIN / "mypy")], "."),
        (
            "types of the harness",
            [str(BIN / "mypy"), "--strict", "--explicit-package-bases", "harness"],
            "tests",
        ),
        ("lint (ruff)", [str(BIN / "ruff"), "check", "operator", "tests", "bench", "charts/sync.py"], "."),
    ],
)
def test_static_check(what: str, argv: list[str], cwd: str) -> None:
    r = subprocess.run(argv, cwd=ROOT / cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{what} failed:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
