"""Small churn-like tables for the trainer tests: numeric and categorical inputs, an id, a target."""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "churned"


def churn(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """`shift` moves tenure and charges (the drift a retraining reacts to)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.5, 0.3, 0.2])
    m2m = (contract == "month-to-month").astype(np.int64)
    tenure = np.clip(rng.integers(1, 73, n) - int(20 * shift), 1, None).astype(np.int64)
    charges = rng.normal(70 + 15 * shift, 20, n).round(2)
    calls = rng.poisson(1.5, n).astype(np.int64)
    z = -2.2 + 2.2 * m2m - 0.06 * tenure + 0.04 * (charges - 70) + 0.8 * calls
    churned = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract": contract,
            TARGET: churned,
        }
    )


def spend(n: int, seed: int) -> pd.DataFrame:
    """A regression table: monthly spend from tenure and plan."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.integers(1, 73, n).astype(float)
    y = (
        20
        + 0.5 * tenure
        + np.select([plan == "plus", plan == "pro"], [15.0, 40.0], 0.0)
        + rng.normal(0, 3, n)
    )
    return pd.DataFrame({"tenure": tenure, "plan": plan, "spend": y})
