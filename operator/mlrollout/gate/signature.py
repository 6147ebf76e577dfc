"""Schema compatibility: callers of the champion must be able to call the candidate unchanged.

The serving runtime rejects missing and unexpected columns, so an added required input, a removed
input and a changed type all break callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlrollout.gate.results import CheckResult

NAME = "signature"


@dataclass(frozen=True)
class Input:
    name: str
    type: str
    required: bool = True


def compare(candidate: Sequence[Input] | None, champion: Sequence[Input] | None) -> CheckResult:
    if champion is None:
        return CheckResult(NAME, "skipped", message="no champion to compare with")
    if not champion or not candidate:
        which = "champion" if not champion else "candidate"
        return CheckResult(NAME, "skipped", message=f"the {which} has no column signature")
    ours = {c.name: c for c in candidate}
    theirs = {c.name: c for c in champion}
    added = sorted(n for n, c in ours.items() if n not in theirs and c.required)
    removed = sorted(n for n in theirs if n not in ours)
    retyped = sorted(
        f"{n}: {theirs[n].type} -> {c.type}"
        for n, c in ours.items()
        if n in theirs and c.type != theirs[n].type
    )
    details = {"added": added, "removed": removed, "retyped": retyped}
    changes = len(added) + len(removed) + len(retyped)
    if not changes:
        return CheckResult(NAME, "passed", 0.0, 0.0, None, details)
    parts = [
        f"{label} {items[:10]}"
        for label, items in (("added", added), ("removed", removed), ("retyped", retyped))
        if items
    ]
    return CheckResult(
        NAME, "failed", float(changes), 0.0, "incompatible inputs: " + "; ".join(parts), details
    )
