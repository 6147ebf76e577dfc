"""Models registered on a real MLflow server for rollout tests and the demo: a healthy scikit-learn
classifier, and genuinely faulty releases of it (pyfunc models logged as code, so nothing is
pickled and the runtime loads them as any user's pyfunc model).

- "errors": raises on rows whose first feature is below -0.5 (about 31 % of N(0, 1) rows), as a
  model with a bug on part of its input space would; the runtime answers those requests with 500.
- "slow": right answers, but each call takes SLOW_SECONDS (a model that lost its fast path).
- "inverted": fast and healthy, but it answers the opposite class (a release trained on flipped
  labels): a shadow comparison must find it disagreeing.
Both answer with floats (1.0) where the healthy classifier answers integers (1): the load can tell
which release served a request (`from_faulty`).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import Literal

FEATURES = ["tenure", "monthly_spend", "support_calls", "age"]
SLOW_SECONDS = 0.4
FAILING_BELOW = -0.5  # rows with tenure below this make the "errors" model raise

Fault = Literal["errors", "slow", "inverted"]

_CODE = """
import time

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

FAULT = {fault!r}


class Release(PythonModel):
    def predict(self, context, model_input, params=None):
        x = model_input.to_numpy(dtype=float)
        if FAULT == "errors" and (x[:, 0] < {failing_below!r}).any():
            raise RuntimeError("feature scaling bug: negative tenure overflows the bucket table")
        if FAULT == "slow":
            time.sleep({slow!r})
        if FAULT == "inverted":
            return (x[:, 2] - 0.5 * x[:, 0] <= 0).astype(float)
        return (x[:, 2] - 0.5 * x[:, 0] > 0).astype(float)


mlflow.models.set_model(Release())
"""


def from_faulty(body: str) -> bool:
    """An answer of /invocations came from a faulty release (its predictions are floats)."""
    return '"predictions"' in body and "." in body.split('"predictions"', 1)[1]


def churn(seed: int, rows: int = 600):  # type: ignore[no-untyped-def]
    """Inputs and churn labels: churn rises with support calls and falls with tenure, plus noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    y = (x["support_calls"] - 0.5 * x["tenure"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return x, y


def register_trained(tracking_uri: str, name: str, seed: int = 1) -> str:
    """Train a small churn classifier (skops, no pickle) and register it; returns the new version."""
    from sklearn.linear_model import LogisticRegression

    x, y = churn(seed)
    return register_fitted(tracking_uri, name, LogisticRegression().fit(x, y), x)


# Given to every log_model: inferring requirements runs the model in a subprocess, seconds of CPU
# per registration, and the runtime image never reads them.
SKLEARN_REQUIREMENTS = ["scikit-learn", "skops"]


def register_fitted(tracking_uri: str, name: str, model: object, x: object, experiment: str = "churn") -> str:
    """Log a fitted scikit-learn model with its signature and register it; returns the new version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(x, model.predict(x)),  # type: ignore[attr-defined]
                registered_model_name=name,
                input_example=x.head(2),  # type: ignore[attr-defined]
                pip_requirements=SKLEARN_REQUIREMENTS,
            )
    return str(info.registered_model_version)


def register_again(tracking_uri: str, name: str, version: str, as_name: str | None = None) -> str:
    """The artifacts of `version` registered once more as a new version of `name` (or of `as_name`,
    created when missing): the same model, agreeing with it on every row; returns the new version.
    No training, no logging."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    old = client.get_model_version(name, version)
    assert old.source is not None
    target = as_name or name
    if as_name is not None:
        with contextlib.suppress(MlflowException):  # already there
            client.create_registered_model(as_name)
    # MLflow 3: the source is the logged model (models:/m-...), which must be named as model_id too
    logged = old.source.removeprefix("models:/") if old.source.startswith("models:/") else None
    made = client.create_model_version(
        target, source=old.source, run_id=old.run_id, model_id=old.model_id or logged
    )
    return str(made.version)


def register_faulty(tracking_uri: str, name: str, fault: Fault) -> str:
    """Register a faulty release of the churn model (see the module docstring); returns its version."""
    import mlflow
    from mlflow.models import infer_signature

    x, _ = churn(0, rows=20)
    x = x[x["tenure"] >= FAILING_BELOW]  # the example must not trip the bug while MLflow logs it
    signature = infer_signature(x, (x["support_calls"] > 0).astype(float))
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's advice on type hints and input examples
        code = Path(tmp) / f"release_{fault}.py"
        code.write_text(_CODE.format(fault=fault, failing_below=FAILING_BELOW, slow=SLOW_SECONDS))
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                signature=signature,
                registered_model_name=name,
                pip_requirements=["mlflow"],  # no subprocess to infer them
            )
    return str(info.registered_model_version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
        name, alias, version
    )
