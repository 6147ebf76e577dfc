"""What the plugin prints: the status of one ModelDeployment, its history, a watch line (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlrollout.cli import timeline

TERMINAL_PHASES = frozenset({"Healthy", "RolledBack", "Failed", "Degraded"})


def _fmt(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def summary(obj: Mapping[str, Any]) -> str:
    """One line: phase, versions, step, weights, analysis; printed by `watch` when it changes."""
    status = obj.get("status") or {}
    rollout = status.get("rollout") or {}
    weights = status.get("weights") or {}
    candidate = (rollout.get("candidate") or {}).get("version")
    parts = [
        f"phase={_fmt(status.get('phase'))}",
        f"stable={_fmt(status.get('stableVersion'))}",
        f"candidate={_fmt(candidate)}",
    ]
    if rollout.get("stepIndex") is not None:
        parts.append(f"step={rollout['stepIndex']}")
    if weights:
        desired = rollout.get("desiredWeight")
        parts.append(f"weight={_fmt(weights.get('canary'))}%" + (f" (desired {desired}%)" if desired else ""))
    analysis = rollout.get("analysis") or {}
    if analysis:
        parts.append(
            f"analysis={analysis.get('stage')}:{analysis.get('verdict')} "
            f"{analysis.get('taken', 0)}/{analysis.get('count', 1)}"
        )
    return " ".join(parts)


def status_text(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    rollout = status.get("rollout") or {}
    lines = [
        f"Name:        {meta.get('namespace')}/{meta.get('name')}",
        f"Model:       {_fmt(status.get('modelName'))}",
        f"Phase:       {_fmt(status.get('phase'))}",
        f"Stable:      {_fmt(status.get('stableVersion'))}",
    ]
    paused = (meta.get("annotations") or {}).get("mlrollout.io/paused", "").lower() == "true"
    if paused:
        lines.append("Paused:      yes (mlrollout.io/paused)")
    candidate = rollout.get("candidate") or {}
    if candidate:
        lines.append(f"Candidate:   {_fmt(candidate.get('version'))} ({_fmt(rollout.get('strategy'))})")
        if rollout.get("stepIndex") is not None:
            lines.append(f"Step:        {rollout['stepIndex']} since {_fmt(rollout.get('stepStartedAt'))}")
    weights = status.get("weights")
    if weights:
        lines.append(
            f"Weights:     stable {weights.get('stable')}%, canary {weights.get('canary')}%"
            f" (desired canary {_fmt(rollout.get('desiredWeight'))}%)"
        )
    lines += _gate_lines(rollout.get("gate"))
    lines += _analysis_lines(rollout.get("analysis"))
    monitoring = status.get("monitoring") or {}
    if monitoring:
        lines.append(
            f"Monitoring:  {_fmt(monitoring.get('verdict'))}"
            f" (drift share {_fmt(monitoring.get('driftShare'))}, last run {_fmt(monitoring.get('lastRun'))})"
        )
    if rollout.get("lastOutcome"):
        lines.append(f"Last:        {rollout['lastOutcome']}")
    if status.get("message"):
        lines.append(f"Message:     {status['message']}")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for c in conditions:
            message = f": {c['message']}" if c.get("message") else ""
            lines.append(f"  {c.get('type')}={c.get('status')} {c.get('reason')}{message}")
    return "\n".join(lines)


def _gate_lines(gate: Mapping[str, Any] | None) -> list[str]:
    if not gate:
        return []
    lines = [f"Gate:        {gate.get('phase')} (version {gate.get('version')}, job {gate.get('job')})"]
    for check in gate.get("checks") or []:
        lines.append(
            f"  {check.get('name')}: {check.get('verdict')} value={_fmt(check.get('value'))}"
            f" threshold={_fmt(check.get('threshold'))}"
        )
    if gate.get("reason"):
        lines.append(f"  reason: {gate['reason']}")
    return lines


def _analysis_lines(analysis: Mapping[str, Any] | None) -> list[str]:
    if not analysis:
        return []
    lines = [
        f"Analysis:    {analysis.get('stage')} {analysis.get('verdict')}"
        f" ({analysis.get('taken', 0)}/{analysis.get('count', 1)} measurements)"
    ]
    for t in analysis.get("tallies") or []:
        lines.append(
            f"  {t.get('metric')}: pass {t.get('passed', 0)}, fail {t.get('failed', 0)},"
            f" inconclusive {t.get('inconclusive', 0)}, error {t.get('errors', 0)}"
        )
    if analysis.get("message"):
        lines.append(f"  {analysis['message']}")
    for m in (analysis.get("history") or [])[-5:]:
        lines.append(
            f"  {m.get('at')} {m.get('metric')}: {m.get('outcome')} value={_fmt(m.get('value'))}"
            + (f" ({m['message']})" if m.get("message") else "")
        )
    return lines


def candidate_version(status: Mapping[str, Any]) -> str | None:
    found = ((status.get("rollout") or {}).get("candidate") or {}).get("version")
    return None if found is None else str(found)


VALUE_WIDTH = 120


def history_text(obj: Mapping[str, Any], tags: Mapping[str, Mapping[str, str]] | None) -> str:
    """Releases, rollbacks and retrainings with their causes (cli.timeline), then the candidate or
    the last aborted version and the promoted versions (the rollback window), newest first, each
    with its MLflow tags (gate, rollout outcome, lineage) when known."""
    status = obj.get("status") or {}
    rollout = status.get("rollout") or {}
    entries: Sequence[Mapping[str, Any]] = status.get("history") or []
    stable = status.get("stableVersion")
    lines: list[str] = timeline.table(timeline.rows(status, tags))
    if lines:
        lines.append("")

    gate = rollout.get("gate") or {}

    def version_lines(version: str, text: str) -> None:
        lines.append(f"version {version}{text}")
        if str(gate.get("version")) == version:
            # The gate as the operator read it (checks with values), even when MLflow is not reached.
            lines.append(
                f"    gate: {gate.get('phase')} (attempt {_fmt(gate.get('attempt'))}, job {gate.get('job')})"
            )
            for check in gate.get("checks") or []:
                lines.append(
                    f"      {check.get('name')}: {check.get('verdict')} value={_fmt(check.get('value'))}"
                    f" threshold={_fmt(check.get('threshold'))}"
                )
        for key, value in sorted((tags or {}).get(version, {}).items()):
            if key.startswith("mlrollout."):
                # the gate's full JSON report tag is for tools: one line of it is enough here
                shown = value if len(value) <= VALUE_WIDTH else value[: VALUE_WIDTH - 3] + "..."
                lines.append(f"    {key} = {shown}")

    candidate = candidate_version(status)
    if candidate is not None:
        version_lines(candidate, f" (candidate): rolling out, phase {_fmt(status.get('phase'))}")
    elif rollout.get("abortedVersion"):
        version_lines(str(rollout["abortedVersion"]), f" (not promoted): {_fmt(rollout.get('lastOutcome'))}")
    if not entries:
        lines.append("no promoted version yet")
    for entry in reversed(entries):
        version = str(entry.get("version"))
        marker = " (stable)" if version == stable else ""
        promoted, cause = _fmt(entry.get("promotedAt")), _fmt(entry.get("cause"))
        version_lines(version, f"{marker}: promoted {promoted} cause {cause}")
    if tags is None:
        lines.append("(registry not reached: MLflow tags not shown)")
    return "\n".join(lines)
