"""Backoff after a failed reconcile (an API error, a 429 from an overloaded API server): exponential
with jitter, capped, never shorter than the server's Retry-After. Pure: the caller supplies the
failure count and the random draw."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

THROTTLED = 429


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, failures: int, jitter: float, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 = the first); `jitter` in
        [0, 1) spreads the wait over [half, full] so that objects failing together retry apart."""
        exponent = max(failures, 1) - 1
        full = self.cap if exponent > 64 else min(self.cap, self.base * self.factor**exponent)
        wait = full * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The Retry-After header in seconds (the API server sends whole seconds with a 429)."""
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None
