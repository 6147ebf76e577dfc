"""The runtime's layers contract (pyproject.toml, checked by import-linter in test_static_checks)
names every runtime module, so a new module cannot slip past it and bring a circle back."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_runtime_module_is_in_the_layers_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["type"] == "layers" and c.get("containers") == ["mlrollout.runtime"]
    ]
    layered = {m.strip() for layer in contract["layers"] for m in layer.split("|")}
    modules = {p.stem for p in (ROOT / "operator" / "mlrollout" / "runtime").glob("*.py")} - {"__init__"}
    assert modules == layered, {"missing": modules - layered, "gone": layered - modules}
