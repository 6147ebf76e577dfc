"""Operator settings from the environment (the Helm chart sets these)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...]  # empty: all namespaces
    health_port: int
    heartbeat_seconds: float
    log_format: str
    verbose: bool
    peering: str | None
    instance: str
    job_service_account: str = "mlrollout-job"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            namespaces=tuple(n.strip() for n in env.get("MLROLLOUT_NAMESPACES", "").split(",") if n.strip()),
            health_port=int(env.get("MLROLLOUT_HEALTH_PORT") or 8080),
            heartbeat_seconds=float(env.get("MLROLLOUT_HEARTBEAT_SECONDS") or 10),
            log_format=(env.get("MLROLLOUT_LOG_FORMAT") or "plain").lower(),
            verbose=env.get("MLROLLOUT_VERBOSE", "") not in {"", "0", "false"},
            peering=env.get("MLROLLOUT_PEERING") or None,
            instance=env.get("POD_NAME") or "mlrollout-operator",
            job_service_account=env.get("MLROLLOUT_JOB_SERVICE_ACCOUNT") or "mlrollout-job",
        )
