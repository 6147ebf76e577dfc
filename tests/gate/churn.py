"""A churn-like problem and the candidates the gate tests judge, registered on a real MLflow server.

Features: tenure (months), monthly_charges, support_calls, month_to_month (0/1); the holdout also
carries contract (for the high-risk segment), gender (for fairness), customer_id, and two columns
only some models read: churn_flag (the target copied: leakage) and gender_m (0/1).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.models import SKLEARN_REQUIREMENTS

FEATURES = ["tenure", "monthly_charges", "support_calls", "month_to_month"]
TARGET = "churned"
HIGH_RISK = "contract == 'month-to-month'"
SLOW_SECONDS = 0.5


def data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.5, 0.3, 0.2])
    m2m = (contract == "month-to-month").astype(np.int64)
    tenure = rng.integers(1, 73, n).astype(np.int64)
    charges = rng.normal(70, 20, n).round(2)
    calls = rng.poisson(1.5, n).astype(np.int64)
    z = -2.2 + 2.2 * m2m - 0.06 * tenure + 0.04 * (charges - 70) + 0.8 * calls
    churned = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    gender = rng.choice(["f", "m"], n)
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "month_to_month": m2m,
            "contract": contract,
            "gender": gender,
            "gender_m": (gender == "m").astype(np.int64),
            "churn_flag": churned.astype(np.float64),
            TARGET: churned,
        }
    )


def fit(kind: str, train: pd.DataFrame) -> tuple[Any, list[str]]:
    """good | weaker (ignores charges) | poor (ignores contract and tenure) | leaky | unfair."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(99)
    x, y = train[FEATURES].copy(), train[TARGET].to_numpy()
    columns = list(FEATURES)
    if kind == "weaker":
        x["monthly_charges"] = rng.permutation(x["monthly_charges"].to_numpy())
    elif kind == "poor":
        for c in ("tenure", "month_to_month", "support_calls"):
            x[c] = rng.permutation(x[c].to_numpy())
    elif kind == "leaky":
        columns.append("churn_flag")
        x["churn_flag"] = train["churn_flag"]
    elif kind == "unfair":
        # labels biased against one group: the model learns to flag men
        columns.append("gender_m")
        x["gender_m"] = train["gender_m"]
        y = np.where((train["gender_m"] == 1) & (rng.random(len(y)) < 0.6), 1, y)
    model = LogisticRegression(max_iter=1000).fit(x[columns], y)
    return model, columns


def register(
    tracking_uri: str, name: str, kind: str, train: pd.DataFrame, training_uri: str | None = None
) -> str:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    # by name: the active experiment's id is process-wide and may be another server's
    mlflow.set_experiment("gate")
    model, columns = fit(kind, train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            if training_uri:
                mlflow.set_tag("mlrollout.training_data", training_uri)
            mlflow.log_param("kind", kind)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(train[columns], model.predict(train[columns])),
                registered_model_name=name,
                pip_requirements=SKLEARN_REQUIREMENTS,
            )
    return str(info.registered_model_version)


SLOW_CODE = f'''
import time

import numpy as np
import mlflow
from mlflow.pyfunc import PythonModel


class SlowChurn(PythonModel):
    """Sensible answers, slowly: every call sleeps {SLOW_SECONDS}s (a stand-in for a heavy model)."""

    def predict(self, context, model_input, params=None):
        time.sleep({SLOW_SECONDS})
        x = model_input
        z = -2.2 + 2.2 * x["month_to_month"] - 0.06 * x["tenure"]
        z = z + 0.04 * (x["monthly_charges"] - 70) + 0.8 * x["support_calls"]
        return 1.0 / (1.0 + np.exp(-z.to_numpy(dtype=float)))


mlflow.models.set_model(SlowChurn())
'''


def register_slow(tracking_uri: str, name: str, train: pd.DataFrame, workdir: Path) -> str:
    """A models-from-code pyfunc: MLflow stores the code as a .py file, never a pickle."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    code = workdir / "slow_churn.py"
    code.write_text(SLOW_CODE)
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                # doubles: the runtime hands a pyfunc float64 frames for numeric rows (long inputs
                # are refused by MLflow's schema enforcement there; see the gate helper's report)
                signature=infer_signature(train[FEATURES].astype(float), np.zeros(len(train))),
                registered_model_name=name,
                pip_requirements=["mlflow"],
            )
    return str(info.registered_model_version)
