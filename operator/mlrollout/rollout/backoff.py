"""Retry spacing for specs the operator cannot act on yet; a spec change retries at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from mlrollout.api.status import ModelDeploymentStatus

BASE_SECONDS = 5.0
MAX_SECONDS = 300.0


def delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... capped at 5 minutes."""
    exponent = max(attempts - 1, 0)
    seconds = MAX_SECONDS if exponent >= 16 else min(BASE_SECONDS * 2**exponent, MAX_SECONDS)
    return timedelta(seconds=seconds)


def wait_remaining(status: ModelDeploymentStatus, generation: int, now: datetime) -> float | None:
    """Seconds to wait before the next attempt, or None when it may run now."""
    retry = status.retry
    if retry is None or status.observed_generation != generation:
        return None
    remaining = (retry.next_attempt_time - now).total_seconds()
    return remaining if remaining > 0 else None
