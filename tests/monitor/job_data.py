"""Reference and inference-log files laid out as the runtime writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def features(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, size=n),
            "income": rng.lognormal(10, 1, size=n),
            "city": rng.choice(["a", "b", "c"], p=[0.6 - 0.3 * shift, 0.3, 0.1 + 0.3 * shift], size=n),
            "plan": rng.choice(["basic", "pro"], size=n),
        }
    )


def write_reference(path: Path, rng: np.random.Generator, n: int = 2000) -> Path:
    frame = features(rng, n, 0.0).assign(prediction=rng.normal(size=n))
    frame.to_parquet(path)
    return path


def write_log(
    root: Path, rng: np.random.Generator, n: int, shift: float, files: int = 2, version: str = "3"
) -> Path:
    """`<root>/predictions/date=.../*.parquet` with the runtime's columns (inputs as `input.<name>`)."""
    folder = root / "predictions" / "date=2026-11-23"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        inputs = features(rng, n // files, shift)
        log = pd.DataFrame(
            {
                "request_id": [f"r{i}-{j}" for j in range(len(inputs))],
                "row": 0,
                "timestamp": 1.0e12,  # far future: always inside the window
                "model": "churn",
                "version": version,
                "track": "stable",
                "kind": "primary",
                "prediction": rng.normal(shift, 1, size=len(inputs)),
                "latency_ms": 1.0,
            }
        )
        for column in inputs:
            log[f"input.{column}"] = inputs[column].to_numpy()
        log.to_parquet(folder / f"part-{i}.parquet")
    return root
