"""Operator settings from the environment (the Helm chart sets these)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace


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
    # heartbeat_seconds is the slow resync (MLROLLOUT_RESYNC_SECONDS, or the older name
    # MLROLLOUT_HEARTBEAT_SECONDS): a safety net for a missed event, since children's changes and
    # user edits wake a reconcile at once.
    watch_children: bool = True  # False only in the polling design (MLROLLOUT_POLLING)
    # Alias resolutions are kept this long per tracking URI (0: ask the registry on every tick).
    registry_resync_seconds: float = 300.0
    max_concurrent_reconciles: int = 8
    # HMAC secret of MLflow's registry webhooks (from a Secret); None: no webhook endpoint.
    webhook_secret: str | None = None
    peering_priority: int | None = None  # None: a random one per process (the highest is active)
    peering_lifetime: int = 60  # seconds a silent peer counts as alive: the failover time
    # All interfaces in a pod (kubelet probes and Prometheus scrape the pod address); loopback when
    # run as a plain process beside others.
    health_host: str = "0.0.0.0"

    @property
    def resync_seconds(self) -> float:
        """How long an object's reconcile may sleep with nothing to wake it: the slow resync, or the
        registry resync when that is shorter (an alias moved without a webhook is only seen by a tick)."""
        if self.registry_resync_seconds > 0:
            return min(self.heartbeat_seconds, self.registry_resync_seconds)
        return self.heartbeat_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            namespaces=tuple(n.strip() for n in env.get("MLROLLOUT_NAMESPACES", "").split(",") if n.strip()),
            health_port=int(env.get("MLROLLOUT_HEALTH_PORT") or 8080),
            heartbeat_seconds=float(
                env.get("MLROLLOUT_RESYNC_SECONDS") or env.get("MLROLLOUT_HEARTBEAT_SECONDS") or 300
            ),
            log_format=(env.get("MLROLLOUT_LOG_FORMAT") or "plain").lower(),
            verbose=env.get("MLROLLOUT_VERBOSE", "") not in {"", "0", "false"},
            peering=env.get("MLROLLOUT_PEERING") or None,
            instance=env.get("POD_NAME") or "mlrollout-operator",
            selector=parse_selector(env.get("MLROLLOUT_SELECTOR", "")),
            job_service_account=env.get("MLROLLOUT_JOB_SERVICE_ACCOUNT") or "mlrollout-job",
            registry_resync_seconds=float(env.get("MLROLLOUT_REGISTRY_RESYNC_SECONDS") or 300),
            max_concurrent_reconciles=_positive(env, "MLROLLOUT_MAX_CONCURRENT_RECONCILES", 8),
            webhook_secret=env.get("MLROLLOUT_WEBHOOK_SECRET") or None,
            peering_priority=int(env["MLROLLOUT_PEERING_PRIORITY"])
            if env.get("MLROLLOUT_PEERING_PRIORITY")
            else None,
            peering_lifetime=_positive(env, "MLROLLOUT_PEERING_LIFETIME", 60),
            health_host=env.get("MLROLLOUT_HEALTH_HOST") or "0.0.0.0",
        )
        if _true(env.get("MLROLLOUT_POLLING", "")):
            # The design before issue 14, kept for side-by-side measurements (bench-operator): no
            # child watches, a 10 s tick per object, the registry asked on every tick.
            settings = replace(
                settings, watch_children=False, heartbeat_seconds=10.0, registry_resync_seconds=0.0
            )
        return settings


def _true(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes"}


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = int(env.get(name) or default)
    if value < 1:
        raise ValueError(f"{name}: must be at least 1, got {value}")
    return value


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
