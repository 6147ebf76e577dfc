"""The skops types a version's lineage records (tag mlrollout.skops_types, written by the built-in
trainer) are trusted from a fixed allow-list only, so a retrained model serves with no
serving.trustedTypes, and a tag naming anything else changes nothing."""

from __future__ import annotations

import logging
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import runtime_models as models
from test_runtime_loading import register_forest

from mlrollout.runtime.lineage import LINEAGE_SAFE_TYPES, SKOPS_TYPES_TAG, from_tag, trusted_from_tags


@pytest.mark.parametrize(
    ("tag", "trusted", "ignored"),
    [
        (None, (), ()),
        ("", (), ()),
        ("numpy.dtype", ("numpy.dtype",), ()),
        (" sklearn.tree._tree.Tree , numpy.dtype,", ("numpy.dtype", "sklearn.tree._tree.Tree"), ()),
        ("builtins.eval,numpy.dtype", ("numpy.dtype",), ("builtins.eval",)),
        ("os.system,posix.system", (), ("os.system", "posix.system")),
        ("numpy.dtypes", (), ("numpy.dtypes",)),  # names match exactly, never by prefix
    ],
)
def test_only_allow_listed_types_are_taken_from_the_tag(
    tag: str | None, trusted: tuple[str, ...], ignored: tuple[str, ...]
) -> None:
    assert from_tag(tag) == (trusted, ignored)


def test_ignored_types_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mlrollout.runtime.lineage"):
        assert trusted_from_tags({SKOPS_TYPES_TAG: "numpy.dtype,builtins.exec"}, "churn", "4") == (
            "numpy.dtype",
        )
    assert "churn version 4" in caplog.text and "builtins.exec" in caplog.text


ESTIMATORS = {
    "classification": ["logistic_regression", "random_forest", "gradient_boosting"],
    "regression": ["random_forest", "gradient_boosting", "linear_regression", "ridge"],
}


@pytest.mark.parametrize(
    ("task", "estimator", "categorical"),
    [(t, e, c) for t, names in ESTIMATORS.items() for e, c in product(names, (False, True))],
)
def test_every_builtin_estimator_needs_only_allow_listed_types(
    task: Any, estimator: Any, categorical: bool
) -> None:
    import numpy as np
    import pandas as pd
    import skops.io

    from mlrollout.train.pipeline import build

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "c": rng.choice(["x", "y"], 200)})
    y = (x["a"] > 0).astype(int) if task == "classification" else 2 * x["a"]
    model = build(estimator, task, {}, ["a", "b"], ["c"] if categorical else [], 0).fit(x, y)
    assert set(skops.io.get_untrusted_types(data=skops.io.dumps(model))) <= LINEAGE_SAFE_TYPES


@pytest.mark.services
def test_a_registered_version_serves_with_the_types_its_lineage_records(
    mlflow_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from mlrollout.runtime.__main__ import prepare
    from mlrollout.runtime.config import Settings
    from mlrollout.runtime.loading import ModelLoadError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.delenv("MLROLLOUT_TRUSTED_TYPES", raising=False)
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    uri, version, _ = register_forest(mlflow_server.uri, f"lineage-{tmp_path.name[-12:]}")
    name = uri.split("/")[1]

    def settings(cache: str) -> Settings:
        return Settings(model_uri=uri, cache_dir=str(tmp_path / cache))

    # no tag: the forest's tree type is not trusted, as before
    with pytest.raises(ModelLoadError, match=r"not trusted: \['sklearn.tree._tree.Tree'\]"):
        prepare(settings("a"))
    # a tag naming an unsafe type as well: that one is ignored, the tree type is trusted
    client.set_model_version_tag(name, version, SKOPS_TYPES_TAG, f"{models.TREE},builtins.eval")
    served, model = prepare(settings("b"))
    assert served.trusted_types == (models.TREE,)
    assert model is not None and model.version == version and model.flavor == "sklearn"
    # a tag naming only types off the allow-list trusts nothing
    client.set_model_version_tag(name, version, SKOPS_TYPES_TAG, "sklearn.tree._tree.TreeX")
    with pytest.raises(ModelLoadError, match="not trusted"):
        prepare(settings("c"))


def test_the_builtin_trainers_pipeline_serves_all_numeric_rows(tmp_path: Path) -> None:
    """Its ColumnTransformer picks columns by name: the runtime hands it a frame, never an array
    (found by the whole-loop test: every request to a retrained numeric model answered 500)."""
    from mlrollout.runtime.loading import load_model, predict_checked, selects_columns_by_name
    from mlrollout.train.pipeline import build

    x, y = models.data()
    pipeline = build("logistic_regression", "classification", {}, list(x.columns), [], 0).fit(x, y)
    assert selects_columns_by_name(pipeline)
    saved = models.save(pipeline, tmp_path / "m", x, trusted=["numpy.dtype"])
    model = load_model(str(saved), trusted_types=("numpy.dtype",))
    assert model.schema.numeric
    rows = x.head(5).to_dict(orient="records")
    predictions = predict_checked(model, model.schema.parse_mlflow({"dataframe_records": rows}))
    assert predictions.tolist() == pipeline.predict(x.head(5)).tolist()
    assert not selects_columns_by_name(pipeline.steps[-1][1])  # the bare estimator takes arrays
