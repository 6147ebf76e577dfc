"""Typed models of the ModelDeployment API (spec and status), condition helpers, and shared names."""

from mlrollout.api.spec import ModelDeploymentSpec
from mlrollout.api.status import ModelDeploymentStatus, Phase

__all__ = ["ModelDeploymentSpec", "ModelDeploymentStatus", "Phase"]
