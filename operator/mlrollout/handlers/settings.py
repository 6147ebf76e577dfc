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
    # Shard selector: only ModelDeployments with these labels (None: the label is present, any value).
    selector: tuple[tuple[str, str | None], ...] = ()
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
            selector=parse_selector(env.get("MLROLLOUT_SELECTOR", "")),
            job_service_account=env.get("MLROLLOUT_JOB_SERVICE_ACCOUNT") or "mlrollout-job",
        )


def parse_selector(text: str) -> tuple[tuple[str, str | None], ...]:
    """`team=fraud,tier` -> (("team", "fraud"), ("tier", None)): equality and existence terms only,
    the subset of label selectors that Kopf's handler filters can express."""
    terms: list[tuple[str, str | None]] = []
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        key, eq, value = term.partition("=")
        if not key.strip() or any(ch in term for ch in "!()<> ") or (eq and not value.strip()):
            raise ValueError(f"MLROLLOUT_SELECTOR: {term!r} is not `key=value` or `key`")
        terms.append((key.strip(), value.strip() if eq else None))
    return tuple(terms)
