"""The built-in trainer without MLflow: columns, task, pipelines, scoring, Optuna search kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from retrain_data import TARGET, churn, spend

from mlrollout.api.loop import BuiltinTrainer
from mlrollout.api.training import TrainJobConfig
from mlrollout.train import job as train_job
from mlrollout.train import pipeline as pl
from mlrollout.train import search as se


def trainer(**changes: Any) -> BuiltinTrainer:
    return BuiltinTrainer.model_validate({"estimator": "logistic_regression", "target": TARGET, **changes})


def config(uri: str = "unused", **changes: Any) -> TrainJobConfig:
    return TrainJobConfig(
        model_name="churn", tracking_uri="http://unused", dataset_uri=uri, trainer=trainer(**changes)
    )


def test_columns_split_numeric_and_categorical_and_honour_exclude() -> None:
    frame = churn(50, 1)
    numeric, categorical = pl.split_columns(frame, trainer(exclude=["customer_id"]))
    assert numeric == ["tenure", "monthly_charges", "support_calls"]
    assert categorical == ["contract"]
    assert pl.split_columns(frame, trainer(features=["tenure", "contract"])) == (["tenure"], ["contract"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": "nope"}, "target column 'nope' is not in the dataset"),
        ({"features": ["tenure", "age"]}, r"feature columns not in the dataset: \['age'\]"),
        (
            {"exclude": ["customer_id", "tenure", "monthly_charges", "support_calls", "contract"]},
            "no input columns",
        ),
    ],
)
def test_bad_columns_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(pl.TrainingInputError, match=message):
        pl.split_columns(churn(20, 1), trainer(**changes))


@pytest.mark.parametrize(
    ("estimator", "target", "task"),
    [
        ("logistic_regression", pd.Series([0.5, 1.5]), "classification"),
        ("ridge", pd.Series([0, 1, 0]), "regression"),
        ("random_forest", pd.Series(["yes", "no"]), "classification"),
        ("random_forest", pd.Series([0, 1, 1, 0]), "classification"),
        ("gradient_boosting", pd.Series([0.1 * i for i in range(100)]), "regression"),
    ],
)
def test_task_from_the_estimator_or_the_target(estimator: str, target: pd.Series, task: str) -> None:
    assert pl.task_of(trainer(estimator=estimator), target) == task


def test_a_regressor_on_a_classification_task_is_refused() -> None:
    with pytest.raises(pl.TrainingInputError, match="ridge is a regressor"):
        pl.task_of(trainer(estimator="ridge", task="classification"), pd.Series([0, 1]))
    with pytest.raises(pl.TrainingInputError, match="does not apply to regression"):
        pl.check_metric("roc_auc", "regression")


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_every_classifier_learns_the_churn_signal(estimator: str) -> None:
    split, metric = train_job.prepare(config(estimator=estimator, exclude=["customer_id"]), churn(800, 3))
    params = {p.name: p.grid[0] for p in pl.SPACES[estimator]}  # type: ignore[index]
    model = pl.build(estimator, split.task, params, split.numeric, split.categorical, 0)  # type: ignore[arg-type]
    model.fit(split.x_train, split.y_train)
    assert metric == "roc_auc"
    assert pl.score(metric, model, split.x_valid, split.y_valid) > 0.7  # a random model scores 0.5


@pytest.mark.parametrize("estimator", ["linear_regression", "ridge", "random_forest"])
def test_regressors_fit_a_regression_table(estimator: str) -> None:
    cfg = TrainJobConfig(
        model_name="spend",
        tracking_uri="http://unused",
        dataset_uri="unused",
        trainer=BuiltinTrainer(estimator=estimator, target="spend"),  # type: ignore[arg-type]
    )
    split, metric = train_job.prepare(cfg, spend(600, 4))
    assert (split.task, metric) == ("regression", "r2")
    params = {p.name: p.grid[0] for p in pl.SPACES[estimator]}  # type: ignore[index]
    model = pl.build(estimator, "regression", params, split.numeric, split.categorical, 0)  # type: ignore[arg-type]
    model.fit(split.x_train, split.y_train)
    assert pl.score("r2", model, split.x_valid, split.y_valid) > 0.8
    assert pl.score("rmse", model, split.x_valid, split.y_valid) < 10


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_missing_values_and_unseen_categories_do_not_break_the_pipeline(estimator: str) -> None:
    frame = churn(300, 5)
    frame["tenure"] = frame["tenure"].astype(float)
    frame.loc[::7, "tenure"] = None
    frame.loc[::5, "contract"] = None
    split, _ = train_job.prepare(config(estimator=estimator, exclude=["customer_id"]), frame)
    params = {p.name: p.grid[0] for p in pl.SPACES[estimator]}  # type: ignore[index]
    model = pl.build(estimator, "classification", params, split.numeric, split.categorical, 0)  # type: ignore[arg-type]
    model.fit(split.x_train, split.y_train)
    rows = split.x_valid.head(3).assign(contract=["three-year", None, "one-year"])
    rows.loc[rows.index[0], "monthly_charges"] = None
    assert model.predict(rows).shape == (3,)


@pytest.mark.parametrize(
    ("estimator", "table", "types"),
    [
        ("logistic_regression", churn(200, 5), ["numpy.dtype"]),
        ("ridge", spend(200, 5), ["numpy.dtype"]),
        ("random_forest", churn(200, 5), ["sklearn.tree._tree.Tree"]),
    ],
)
def test_types_serving_must_trust_are_named(estimator: str, table: pd.DataFrame, types: list[str]) -> None:
    from mlrollout.train.register import untrusted_types

    target = TARGET if TARGET in table else "spend"
    cfg = TrainJobConfig(
        model_name="m",
        tracking_uri="http://unused",
        dataset_uri="unused",
        trainer=BuiltinTrainer(estimator=estimator, target=target, exclude=["customer_id"]),  # type: ignore[arg-type]
    )
    split, _ = train_job.prepare(cfg, table)
    params = {p.name: p.grid[0] for p in pl.SPACES[estimator]}  # type: ignore[index]
    model = pl.build(estimator, split.task, params, split.numeric, split.categorical, 0)  # type: ignore[arg-type]
    model.fit(split.x_train, split.y_train)
    assert list(untrusted_types(model)) == types


@pytest.mark.parametrize(("search", "trials", "expected"), [("tpe", 4, 4), ("random", 3, 3), ("grid", 50, 8)])
def test_search_kinds_run_the_asked_number_of_trials(search: str, trials: int, expected: int) -> None:
    cfg = config(search=search, trials=trials, exclude=["customer_id"])
    split, metric = train_job.prepare(cfg, churn(400, 6))
    result = se.run_search(cfg.trainer, split, metric, f"t-{search}")
    assert result is not None
    assert result.finished_trials == expected  # grid: 4 values of C x 2 class weights, then it stops
    assert set(result.params) == {"C", "class_weight"}
    assert 0.6 < result.value <= 1.0


def test_parallel_workers_share_one_study_in_sqlite(tmp_path: Path) -> None:
    """Two workers on one RDB storage: together they run `trials`, worker 0 reports the best of all."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = config(trials=6, parallelism=2, storage=storage, exclude=["customer_id"])
    split, metric = train_job.prepare(cfg, churn(300, 7))
    assert se.run_search(cfg.trainer, split, metric, "shared", worker=1) is None
    result = se.run_search(cfg.trainer, split, metric, "shared", worker=0)
    assert result is not None
    assert result.finished_trials == 6  # worker 1 ran all six; worker 0 found the study complete


def test_storage_url_takes_secrets_from_the_env_and_refuses_missing_ones() -> None:
    url = "postgresql://optuna:${OPTUNA_PASSWORD}@db:5432/optuna"
    assert se.storage_url(url, {"OPTUNA_PASSWORD": "s3cret"}) == "postgresql://optuna:s3cret@db:5432/optuna"
    with pytest.raises(pl.TrainingInputError, match="OPTUNA_PASSWORD"):
        se.storage_url(url, {})


def test_reference_snapshot_has_the_model_inputs_and_its_predictions() -> None:
    from mlrollout.train.register import reference_snapshot

    split, _ = train_job.prepare(config(exclude=["customer_id"]), churn(300, 8))
    model = pl.build("logistic_regression", "classification", {"C": 1.0}, split.numeric, split.categorical, 0)
    model.fit(split.x_train, split.y_train)
    snap = reference_snapshot(model, split.x_train, rows=50, seed=0)
    assert list(snap.columns) == [*split.numeric, *split.categorical, "prediction"]
    assert len(snap) == 50 and set(snap["prediction"]) <= {0, 1}


@pytest.mark.parametrize(
    ("table", "changes", "message"),
    [
        (pd.DataFrame({"x": [1, 2, 3, 4], TARGET: [1, 1, 1, 1]}), {}, "single class"),
        (churn(40, 9), {"metric": "rmse"}, "does not apply to classification"),
    ],
)
def test_bad_training_input_is_refused_before_any_trial(
    table: pd.DataFrame, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(pl.TrainingInputError, match=message):
        train_job.prepare(config(**changes), table)


def test_main_reports_a_missing_dataset_as_bad_input(tmp_path: Path) -> None:
    cfg = config(uri=str(tmp_path / "missing.parquet"))
    (tmp_path / "config.json").write_text(cfg.model_dump_json(by_alias=True))
    term = tmp_path / "termination"
    code = train_job.main(["--config", str(tmp_path / "config.json"), "--termination-log", str(term)])
    assert code == train_job.EXIT_BAD_INPUT
    report = term.read_text()
    assert '"outcome":"error"' in report and "does not exist" in report


def test_main_refuses_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"modelName": "x"}')
    term = tmp_path / "termination"
    assert train_job.main(["--config", str(tmp_path / "config.json"), "--termination-log", str(term)]) == 3
    assert "invalid training configuration" in term.read_text()
