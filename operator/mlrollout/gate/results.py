"""What every check returns, and how one gate outcome follows from many checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlrollout.api.gate import CheckVerdict, GateCheck, GateOutcome


class CouldNotRun(Exception):
    """A check cannot be computed: bad input or an unavailable dependency. Never a pass or a rejection.

    `bad_input` marks causes a retry cannot fix (a segment that does not parse, an unknown metric).
    """

    def __init__(self, reason: str, bad_input: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bad_input = bad_input


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: CheckVerdict
    value: float | None = None
    threshold: float | None = None
    message: str | None = None
    details: dict[str, Any] = field(
        default_factory=dict
    )  # the full report only, never the termination message

    def compact(self) -> GateCheck:
        message = (
            self.message if self.message is None or len(self.message) <= 512 else self.message[:509] + "..."
        )
        return GateCheck(
            name=self.name[:256],
            verdict=self.verdict,
            value=_finite(self.value),
            threshold=_finite(self.threshold),
            message=message,
        )


def _finite(v: float | None) -> float | None:
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return None
    return float(v)


def bounded(name: str, value: float, minimum: float | None, maximum: float | None, **kw: Any) -> CheckResult:
    """passed when minimum <= value <= maximum; the threshold shown is the bound that decides."""
    if minimum is not None and value < minimum:
        return CheckResult(name, "failed", value, minimum, f"{value:.4g} < min {minimum:.4g}", **kw)
    if maximum is not None and value > maximum:
        return CheckResult(name, "failed", value, maximum, f"{value:.4g} > max {maximum:.4g}", **kw)
    threshold = minimum if minimum is not None else maximum
    return CheckResult(name, "passed", value, threshold, None, **kw)


def error(name: str, reason: str, **kw: Any) -> CheckResult:
    return CheckResult(name, "error", message=reason, **kw)


def outcome(results: Sequence[CheckResult]) -> GateOutcome:
    """error beats failed beats passed: a check that could not run leaves the question open."""
    verdicts = {r.verdict for r in results}
    if "error" in verdicts:
        return "error"
    if "failed" in verdicts:
        return "failed"
    return "passed"
