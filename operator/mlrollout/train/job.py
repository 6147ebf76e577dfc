"""`mlrollout train`: the built-in trainer. Read the dataset, search, fit, register a version with lineage.

Reads its configuration (TrainJobConfig JSON/YAML) from `--config FILE` or env MLROLLOUT_TRAIN_CONFIG,
the dataset by URI through fsspec (Parquet or CSV, local or S3), splits off a validation share, runs
an Optuna search on it, refits the best pipeline on all rows, logs it to MLflow with skops and
registers a new version (see mlrollout.train.register for its tags). Writes the compact TrainReport
to the termination message (`--termination-log`, env MLROLLOUT_TERMINATION_LOG, default
/dev/termination-log) and prints it.

Parallel pods (spec parallelism > 1, an Indexed Job): pod JOB_COMPLETION_INDEX 0 registers the
model; the others only run trials of the shared study and exit 0.

Exit codes: 0 registered (or a helper pod's share done); 1 could not run for a reason a retry may
fix (MLflow or storage unreachable); 3 bad input (no dataset, no target column, a regressor on a
classification target, no trial completed): retrying cannot help.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlrollout.api.jobs import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRY, TERMINATION_MESSAGE_LIMIT
from mlrollout.api.training import ENV_CONFIG, TrainJobConfig, TrainReport
from mlrollout.jobs.entry import (
    BadConfig,
    add_termination_log_argument,
    limit_mlflow_retries,
    load_config,
    write_termination,
)
from mlrollout.train.pipeline import TrainingInputError

WORKER_ENV = "JOB_COMPLETION_INDEX"


class CouldNotTrain(Exception):
    def __init__(self, message: str, bad_input: bool) -> None:
        super().__init__(message)
        self.bad_input = bad_input


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlrollout train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help=f"TrainJobConfig JSON or YAML file (default: env {ENV_CONFIG})")
    add_termination_log_argument(p)
    p.add_argument("--worker", type=int, default=int(os.environ.get(WORKER_ENV, "0") or 0))
    return p.parse_args(list(argv))


def prepare(config: TrainJobConfig, frame: pd.DataFrame) -> tuple[Any, str]:
    """(Split, metric) from the table: columns, task, metric, a stratified validation split."""
    from sklearn.model_selection import train_test_split

    from mlrollout.train.pipeline import check_metric, default_metric, split_columns, task_of
    from mlrollout.train.search import Split

    trainer = config.trainer
    numeric, categorical = split_columns(frame, trainer)
    frame = frame[frame[trainer.target].notna()]
    y = frame[trainer.target]
    task = task_of(trainer, y)
    metric = trainer.metric or default_metric(task)
    check_metric(metric, task)
    if task == "classification" and y.nunique() < 2:
        raise TrainingInputError(f"target {trainer.target!r} has a single class: nothing to learn")
    x = frame[[*numeric, *categorical]]
    counts = y.value_counts()
    stratify = y if task == "classification" and counts.min() >= 2 else None
    try:
        x_train, x_valid, y_train, y_valid = train_test_split(
            x, y, test_size=trainer.validation_fraction, random_state=trainer.seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingInputError(f"cannot split {len(frame)} rows for validation: {exc}") from exc
    split = Split(x_train, y_train, x_valid, y_valid, numeric, categorical, task)
    return split, metric


def train(config: TrainJobConfig, worker: int = 0) -> TrainReport | None:
    """One training; None for a helper pod of a parallel study (it only runs trials)."""
    from mlrollout.adapters.datasets.fsspec_reader import DatasetError, fingerprint, read_table
    from mlrollout.train.pipeline import build
    from mlrollout.train.register import log_and_register
    from mlrollout.train.search import run_search

    try:
        frame = read_table(config.dataset_uri)
    except DatasetError as exc:
        raise CouldNotTrain(str(exc), bad_input=True) from exc
    split, metric = prepare(config, frame)
    study = config.study_name or f"{config.deployment or config.model_name}-{config.attempt}".replace(
        "/", "-"
    )
    result = run_search(config.trainer, split, metric, study, worker)
    if result is None:
        return None
    trainer = config.trainer
    model = build(
        trainer.estimator, split.task, result.params, split.numeric, split.categorical, trainer.seed
    )
    inputs = pd.concat([split.x_train, split.x_valid])
    model.fit(inputs, pd.concat([split.y_train, split.y_valid]))
    metrics = {
        f"validation_{metric}": result.value,
        "trials": float(result.finished_trials),
        "rows": float(len(inputs)),
    }
    data_hash = fingerprint(frame)
    importance = training_importance(model, split)
    registered = log_and_register(config, model, inputs, result.params, metrics, data_hash, importance)
    return TrainReport(
        outcome="registered",
        model_name=config.model_name,
        version=registered.version,
        run_id=registered.run_id,
        metric=metric,
        value=result.value,
        trials=result.finished_trials,
        data_hash=data_hash,
        reference_uri=registered.reference_uri,
    )


def training_importance(model: Any, split: Any) -> dict[str, float]:
    """Permutation importance on the validation rows, of the same pipeline fitted on the training
    rows only (the final model has seen the validation rows): the monitor's baseline for importance
    stability."""
    from sklearn.base import clone

    from mlrollout.monitor.importance import permutation_importances

    held_out = clone(model).fit(split.x_train, split.y_train)
    return permutation_importances(held_out, split.x_valid, split.y_valid, split.task)


def write_report(path: str, report: TrainReport) -> None:
    text = report.model_dump_json(by_alias=True, exclude_none=True)
    if len(text) > TERMINATION_MESSAGE_LIMIT:  # only `reason` can be long
        report = report.model_copy(update={"reason": (report.reason or "")[:500]})
        text = report.model_dump_json(by_alias=True, exclude_none=True)
    write_termination(path, text, "train")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    limit_mlflow_retries()
    model_name = "?"
    try:
        config = load_config(TrainJobConfig, args.config, ENV_CONFIG, "training")
        model_name = config.model_name
        report = train(config, args.worker)
    except (BadConfig, CouldNotTrain, TrainingInputError) as exc:
        bad = not isinstance(exc, CouldNotTrain) or exc.bad_input  # BadConfig: bad input
        return _fail(args.termination_log, model_name, str(exc), EXIT_BAD_INPUT if bad else EXIT_RETRY)
    except Exception as exc:  # MLflow or storage unreachable, an estimator crash: a retry may help
        traceback.print_exc(file=sys.stderr)
        return _fail(args.termination_log, model_name, f"{type(exc).__name__}: {exc}", EXIT_RETRY)
    if report is None:
        print(f"train: worker {args.worker} finished its share of the study")
        return EXIT_OK
    write_report(args.termination_log, report)
    return EXIT_OK


def _fail(path: str, model_name: str, reason: str, code: int) -> int:
    report = TrainReport(outcome="error", model_name=model_name, reason=reason[:1024])
    write_report(path, report)
    print(f"train: {reason}", file=sys.stderr)
    return code
