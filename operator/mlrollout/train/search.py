"""Optuna search over a pipeline's hyperparameters: TPE (default), random or grid.

Parallel pods share one study through an RDB storage (`storage`: postgresql://, mysql://, or
sqlite:///path on a volume every pod mounts; `${VAR}` parts come from the pod's env, so a password
stays in a Secret). Each pod runs trials until the study holds `trials` finished ones; pod 0 then
waits for the others' running trials and reports the best.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from mlrollout.api.base import parse_duration
from mlrollout.api.loop import BuiltinTrainer
from mlrollout.train.pipeline import (
    MAXIMIZE,
    SPACES,
    Param,
    ParamValue,
    Task,
    TrainingInputError,
    build,
    grid,
    score,
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
POLL_SECONDS = 1.0
DEFAULT_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_valid: pd.DataFrame
    y_valid: pd.Series
    numeric: Sequence[str]
    categorical: Sequence[str]
    task: Task


@dataclass(frozen=True)
class SearchResult:
    params: dict[str, Any]
    value: float
    finished_trials: int
    study_name: str


def storage_url(template: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Fill ${VAR} from the env; a missing variable is an error, never an empty password."""
    if template is None:
        return None
    env = os.environ if env is None else env

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise TrainingInputError(f"storage URL needs env {m.group(1)}, which is not set")
        return env[m.group(1)]

    return _VAR.sub(fill, template)


def suggest(trial: Any, space: Sequence[Param], search: str) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for p in space:
        if search == "grid":
            params[p.name] = trial.suggest_categorical(p.name, list(p.grid))
        elif p.choices:
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            assert p.low is not None and p.high is not None
            params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return params


def _sampler(trainer: BuiltinTrainer) -> Any:
    import optuna

    if trainer.search == "grid":
        return optuna.samplers.GridSampler(grid(trainer.estimator), seed=trainer.seed)
    if trainer.search == "random":
        return optuna.samplers.RandomSampler(seed=trainer.seed)
    return optuna.samplers.TPESampler(seed=trainer.seed)


def grid_size(trainer: BuiltinTrainer) -> int:
    size = 1
    for values in grid(trainer.estimator).values():
        size *= len(values)
    return size


def run_search(
    trainer: BuiltinTrainer,
    split: Split,
    metric: str,
    study_name: str,
    worker: int = 0,
) -> SearchResult | None:
    """Run this pod's share of the study; the best trial for worker 0, None for the others."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_url(trainer.storage)
    direction: Literal["maximize", "minimize"] = "maximize" if metric in MAXIMIZE else "minimize"
    study = optuna.create_study(
        storage=storage,
        sampler=_sampler(trainer),
        study_name=study_name,
        direction=direction,
        load_if_exists=storage is not None,
    )
    space = SPACES[trainer.estimator]
    target = min(trainer.trials, grid_size(trainer)) if trainer.search == "grid" else trainer.trials
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    def objective(trial: Any) -> float:
        params = suggest(trial, space, trainer.search)
        model = build(trainer.estimator, split.task, params, split.numeric, split.categorical, trainer.seed)
        model.fit(split.x_train, split.y_train)
        return score(metric, model, split.x_valid, split.y_valid)

    timeout = parse_duration(trainer.timeout).total_seconds() if trainer.timeout else None
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < target:
        study.optimize(
            objective,
            n_trials=target - done,
            timeout=timeout,
            callbacks=[optuna.study.MaxTrialsCallback(target, states=finished)],
            catch=(ValueError, ArithmeticError),
            gc_after_trial=False,
        )
    if worker != 0:
        return None
    _wait_for_others(study, timeout or DEFAULT_WAIT_SECONDS)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        why = failed[0].system_attrs.get("fail_reason", "") if failed else "no trial ran (timeout too short?)"
        raise TrainingInputError(f"no trial completed: {why}"[:800])
    best = study.best_trial
    return SearchResult(
        params=dict(best.params),
        value=float(best.value if best.value is not None else float("nan")),
        finished_trials=len(study.get_trials(deepcopy=False, states=finished)),
        study_name=study_name,
    )


def _wait_for_others(study: Any, limit_seconds: float) -> None:
    """Parallel pods may still run trials of the shared study: wait for them (bounded)."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + limit_seconds
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
