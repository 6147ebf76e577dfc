"""The gate's two reports: a compact GateReport for the termination message, a full one for people."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlrollout.api.gate import GateOutcome, GateReport
from mlrollout.api.jobs import TERMINATION_MESSAGE_LIMIT
from mlrollout.gate.results import CheckResult

TAG_PREFIX = "mlrollout.gate"
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]+")


def compact(
    outcome: GateOutcome,
    model_name: str,
    version: str,
    results: Sequence[CheckResult],
    reason: str | None = None,
    report_uri: str | None = None,
) -> GateReport:
    return GateReport(
        outcome=outcome,
        model_name=model_name,
        version=version,
        checks=[r.compact() for r in results[:64]],
        reason=reason if reason is None or len(reason) <= 1024 else reason[:1021] + "...",
        report_uri=report_uri,
    )


def termination_message(report: GateReport, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """JSON by alias within `limit` bytes: the outcome always; failures before passes; messages last."""

    def dump(r: GateReport) -> str | None:
        text = r.model_dump_json(by_alias=True, exclude_none=True)
        return text if len(text.encode()) <= limit else None

    text = dump(report)
    if text is not None:
        return text
    report = report.model_copy(update={"reason": (report.reason or "")[:300] or None})
    shorter = [c.model_copy(update={"message": (c.message or "")[:80] or None}) for c in report.checks]
    bare = [c.model_copy(update={"message": None}) for c in report.checks]
    important = [c for c in bare if c.verdict in ("failed", "error")]
    for checks in (shorter, [c for c in shorter if c.verdict != "passed"], bare, important):
        text = dump(report.model_copy(update={"checks": checks}))
        if text is not None:
            return text
    kept: list[Any] = []
    for c in important:  # as many failures as fit
        if dump(report.model_copy(update={"checks": [*kept, c]})) is None:
            break
        kept.append(c)
    return dump(report.model_copy(update={"checks": kept})) or report.model_copy(
        update={"checks": [], "reason": None}
    ).model_dump_json(by_alias=True, exclude_none=True)


def tag_key(check_name: str) -> str:
    """An MLflow tag key for a check: `metric:f1[plan == 'p']` -> mlrollout.gate.metric.f1.plan_p."""
    cleaned = _TAG_UNSAFE.sub("_", check_name.replace(":", ".").replace("[", ".").replace("]", ""))
    cleaned = re.sub(r"_+", "_", cleaned).strip("._")
    return f"{TAG_PREFIX}.{cleaned}"[:250]


def version_tags(report: GateReport, at: str) -> dict[str, str]:
    """Tags on the model version: the outcome (passed|failed), each check's verdict, the compact report."""
    tags = {
        f"{TAG_PREFIX}.at": at,
        f"{TAG_PREFIX}.report": report.model_dump_json(by_alias=True, exclude_none=True),
    }
    if report.outcome == "error":
        tags[f"{TAG_PREFIX}.error"] = report.reason or "could not run"
        return tags
    tags[TAG_PREFIX] = report.outcome
    tags.update({tag_key(c.name): c.verdict for c in report.checks})
    if report.report_uri:
        tags[f"{TAG_PREFIX}.report_uri"] = report.report_uri
    return tags


def full(report: GateReport, results: Sequence[CheckResult], context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "outcome": report.outcome,
        "model": {"name": report.model_name, "version": report.version},
        "reason": report.reason,
        "context": dict(context),
        "checks": [
            {
                "name": r.name,
                "verdict": r.verdict,
                "value": r.value,
                "threshold": r.threshold,
                "message": r.message,
                "details": r.details,
            }
            for r in results
        ],
    }


_COLOURS = {
    "passed": "#1a7f37",
    "failed": "#cf222e",
    "error": "#9a6700",
    "warning": "#9a6700",
    "skipped": "#57606a",
}


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def render_html(doc: Mapping[str, Any]) -> str:
    """A self-contained page: outcome, one row per check, the details of each under it."""
    model = doc["model"]
    title = f"Gate report: {model['name']} v{model['version']}: {doc['outcome']}"
    rows = []
    for c in doc["checks"]:
        colour = _COLOURS.get(c["verdict"], "#000")
        details = html.escape(json.dumps(c["details"], indent=2, default=str)) if c["details"] else ""
        rows.append(
            f"<tr><td>{html.escape(c['name'])}</td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(c['verdict'])}</td>"
            f"<td>{_num(c['value'])}</td><td>{_num(c['threshold'])}</td>"
            f"<td>{html.escape(c['message'] or '')}"
            + (f"<details><summary>details</summary><pre>{details}</pre></details>" if details else "")
            + "</td></tr>"
        )
    reason = f"<p><b>Reason:</b> {html.escape(doc['reason'])}</p>" if doc.get("reason") else ""
    context = html.escape(json.dumps(doc.get("context", {}), indent=2, default=str))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{reason}"
        "<table><tr><th>check</th><th>verdict</th><th>value</th><th>threshold</th><th>message</th></tr>"
        + "".join(rows)
        + f"</table><h2>Context</h2><pre>{context}</pre></body></html>"
    )
