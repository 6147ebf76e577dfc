"""What the operator and the Jobs it starts (gate, training) agree on.

Those Jobs report through their pod's termination message (compact JSON), so they need no
Kubernetes API access; their exit code says whether a retry can help.
"""

from __future__ import annotations

from pydantic import Field

from mlrollout.api.base import ApiModel

TERMINATION_LOG_ENV = "MLROLLOUT_TERMINATION_LOG"
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes; Kubernetes truncates longer messages
# 0 ran (the report says how it went); 1 could not run, a retry may help; 3 bad input: the Job fails at once.
EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 3


class JobRunning(ApiModel):
    """The Job has not finished; `last_error` is why a pod failed (it is retried)."""

    job: str
    last_error: str | None = None


class JobCouldNotRun(ApiModel):
    """The Job finished without a usable report: a condition and an Event name the problem."""

    job: str
    reason: str = Field(description="CamelCase, for a condition: DeadlineExceeded, BadInput, NoReport, ...")
    message: str
