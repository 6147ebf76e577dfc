"""Champion/challenger on the same holdout: minDelta is a minimum gain, or a non-inferiority margin."""

from __future__ import annotations

from mlrollout.api.validation import ChampionChallenger
from mlrollout.gate.results import CheckResult, CouldNotRun, error
from mlrollout.gate.tasks import LOWER_IS_BETTER, Predictions, Task, compute, metric_fn

NAME = "champion:{metric}"


def improvement(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is, in the metric's units, whatever its direction."""
    return champion - candidate if metric in LOWER_IS_BETTER else candidate - champion


def compare(
    cc: ChampionChallenger,
    task: Task,
    candidate: Predictions,
    champion: Predictions | None,
    champion_version: str,
) -> CheckResult:
    name = NAME.format(metric=cc.metric)
    try:
        metric_fn(task, cc.metric)
        if champion is None:
            return CheckResult(name, "skipped", message="no champion to compare with")
        ours = compute(task, cc.metric, candidate)
        theirs = compute(task, cc.metric, champion)
    except CouldNotRun as exc:
        return error(name, exc.reason, details={"bad_input": exc.bad_input})
    delta = improvement(cc.metric, ours, theirs)
    details = {"candidate": ours, "champion": theirs, "champion_version": champion_version}
    figures = f"{cc.metric} {ours:.4g} vs champion v{champion_version} {theirs:.4g}"
    if delta < cc.min_delta:
        kind = "non-inferiority margin" if cc.min_delta < 0 else "required gain"
        return CheckResult(
            name,
            "failed",
            delta,
            cc.min_delta,
            f"{figures}: gain {delta:+.4g} < {kind} {cc.min_delta:+.4g}",
            details,
        )
    return CheckResult(name, "passed", delta, cc.min_delta, f"{figures}: gain {delta:+.4g}", details)
