"""What the operator hands a training Job, and what the built-in trainer reports back.

The Job reports through its termination message (compact JSON, < 4 KiB) like the gate Job, so it
needs no Kubernetes API access; the registered version carries the full lineage in MLflow.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlrollout.api import names
from mlrollout.api.base import ApiModel
from mlrollout.api.jobs import JobCouldNotRun, JobRunning
from mlrollout.api.loop import BuiltinTrainer

# Version tags written by the trainer (the gate's leakage check reads mlrollout.training_data).
TAG_PARENT_VERSION = "mlrollout.parent_version"
TAG_DATA_HASH = "mlrollout.data_hash"
TAG_TRIGGER = "mlrollout.trigger"
TAG_TRAINING_DATA = "mlrollout.training_data"
TAG_REFERENCE_URI = "mlrollout.reference_uri"
TAG_DEPLOYMENT = "mlrollout.deployment"
TAG_SKOPS_TYPES = "mlrollout.skops_types"
# Permutation importance at training time, JSON {"feature": importance}: the monitor's baseline for
# importance stability (a custom trainer may set it too).
TAG_FEATURE_IMPORTANCE = "mlrollout.feature_importance"
# Env of a training pod (the user's own image reads these too).
ENV_DATASET_URI = "MLROLLOUT_DATASET_URI"
ENV_PARENT_VERSION = "MLROLLOUT_PARENT_VERSION"
ENV_TRIGGER = "MLROLLOUT_TRIGGER"
ENV_MODEL_NAME = "MLROLLOUT_MODEL_NAME"
ENV_CONFIG = "MLROLLOUT_TRAIN_CONFIG"


class TrainJobConfig(ApiModel):
    """The built-in trainer's configuration (JSON in env MLROLLOUT_TRAIN_CONFIG, or --config FILE)."""

    model_name: str = Field(min_length=1, max_length=256)
    tracking_uri: str = Field(min_length=1, max_length=2048)
    dataset_uri: str = Field(min_length=1, max_length=2048)
    trainer: BuiltinTrainer
    parent_version: str | None = None
    trigger: str = Field(default="manual", max_length=1024)
    deployment: str = Field(default="", description="namespace/name of the ModelDeployment.")
    attempt: int = Field(default=1, ge=1)
    study_name: str | None = Field(
        default=None, description="Default: <deployment>-<attempt> (parallel pods share it)."
    )
    reference_dir: str | None = None
    experiment: str = Field(default="mlrollout-training", max_length=256)


TrainOutcome = Literal["registered", "error"]


class TrainReport(ApiModel):
    """The termination message of a training Job (compact JSON, by alias)."""

    outcome: TrainOutcome
    model_name: str
    version: str | None = None
    run_id: str | None = None
    metric: str | None = None
    value: float | None = None
    trials: int | None = Field(default=None, ge=0)
    data_hash: str | None = None
    reference_uri: str | None = Field(default=None, max_length=2048)
    reason: str | None = Field(default=None, max_length=1024, description="Why it could not train.")


TrainResult = TrainReport | JobRunning | JobCouldNotRun


def train_job_name(deployment: str, attempt: int) -> str:
    """`<deployment>-train-<attempt>`: deterministic, so a replayed tick applies the same Job."""
    return names.child_name(deployment, f"train-{attempt}")
