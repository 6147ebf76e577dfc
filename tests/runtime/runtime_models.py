"""Small real models saved the way MLflow 3 saves them (skops by default), for the runtime tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_FEATURES = 20
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
TREE = "sklearn.tree._tree.Tree"


def data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=COLUMNS)
    y = pd.Series((x.f0 + x.f1 > 0).astype(int), name="y")
    return x, y


def save(
    model: object, path: Path, x: pd.DataFrame, fmt: str = "skops", trusted: list[str] | None = None
) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(x, model.predict(x)),  # type: ignore[attr-defined]
            serialization_format=fmt,
            skops_trusted_types=trusted,
        )
    return path


def forest(path: Path, trees: int = 10, regression: bool = False) -> Path:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    x, y = data()
    if regression:
        m: object = RandomForestRegressor(trees, random_state=0, max_depth=6).fit(x, x.f0 * 2 + x.f1)
    else:
        m = RandomForestClassifier(trees, random_state=0, max_depth=8).fit(x, y)
    return save(m, path, x, trusted=[TREE])


def logistic(path: Path, fmt: str = "skops") -> Path:
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    return save(LogisticRegression().fit(x, y), path, x, fmt=fmt)


def mixed(path: Path) -> Path:
    """A pipeline with a string and an integer column: the DataFrame path."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(1)
    x = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "premium"], 300),
            "age": rng.integers(18, 80, 300),
            "spend": rng.normal(size=300),
        }
    )
    y = ((x.plan == "premium") ^ (x.spend > 0)).astype(int)
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(x, y)
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipe))
    return save(pipe, path, x, trusted=untrusted)
