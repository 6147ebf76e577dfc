"""What the entrypoints of the reporting Jobs (`mlrollout gate`, `mlrollout train`) share: their
configuration, their MLflow client's patience, and the termination message they leave."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mlrollout.api.jobs import TERMINATION_LOG, TERMINATION_LOG_ENV

M = TypeVar("M", bound=BaseModel)


class BadConfig(Exception):
    """No configuration, or one that does not parse: bad input, a retry cannot help."""


def add_termination_log_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--termination-log", default=os.environ.get(TERMINATION_LOG_ENV, TERMINATION_LOG))


def load_config(model: type[M], path: str | None, env: str, what: str) -> M:
    """`model` from the file at `path`, else from env `env` (JSON or YAML)."""
    import yaml

    if path:
        text = Path(path).read_text()
    elif os.environ.get(env):
        text = os.environ[env]
    else:
        raise BadConfig(f"no configuration: pass --config FILE or set {env}")
    try:
        return model.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise BadConfig(f"invalid {what} configuration: {exc}"[:1000]) from exc


def limit_mlflow_retries() -> None:
    """The MLflow client retries a dead server for minutes; the Job's own retries (and the
    operator's backoff) are the place for that."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")


def write_termination(path: str, text: str, prog: str) -> None:
    """Print the report and leave it as the termination message; outside a pod the default path
    may not be writable: say so and go on."""
    print(text, flush=True)
    try:
        Path(path).write_text(text)
    except OSError as exc:
        print(f"{prog}: cannot write the termination message to {path}: {exc}", file=sys.stderr)
