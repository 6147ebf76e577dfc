"""`kubectl mlrollout history`'s table: releases, rollbacks and retrainings with their causes (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from mlrollout.cli import render
from mlrollout.cli.timeline import Row, rows, table

DRIFT = "input drift on 2 column(s) (tenure, monthly_spend), share 0.50 over 812 rows (minSamples 200)"
STATUS: dict[str, Any] = {
    "phase": "Healthy",
    "stableVersion": "2",
    "history": [
        {"version": "1", "promotedAt": "2026-11-23T10:00:00Z", "cause": "initial"},
        {"version": "2", "promotedAt": "2026-11-23T10:09:30Z", "cause": "retrain:drift"},
    ],
    "retraining": {
        "state": "Trained",
        "trigger": "drift",
        "reason": DRIFT,
        "job": "churn-train-1",
        "startedAt": "2026-11-23T10:05:00Z",
        "finishedAt": "2026-11-23T10:06:10+00:00",
        "version": "2",
    },
}


def test_releases_retrainings_and_rollbacks_newest_first_with_their_causes() -> None:
    tags = {
        "3": {
            "mlrollout.rollout": "rolled_back",
            "mlrollout.rollout.reason": "error-rate: 3 failed measurements (last 0.31 > max 0.05)",
            "mlrollout.rollout.at": "2026-11-23T10:20:00Z",
        },
        "2": {"mlrollout.rollout": "promoted", "mlrollout.trigger": f"drift: {DRIFT}"},
    }
    status = {
        **STATUS,
        "rollout": {"abortedVersion": "3", "lastOutcome": "version 3 rolled back: error-rate"},
    }
    assert [(r.event, r.version) for r in rows(status, tags)] == [
        ("rolled back", "3"),
        ("promoted", "2"),
        ("retrained", "2"),
        ("promoted", "1"),
    ]
    lines = table(rows(status, tags))
    assert lines[0].split() == ["WHEN", "EVENT", "VERSION", "CAUSE"]
    assert lines[1].endswith("error-rate: 3 failed measurements (last 0.31 > max 0.05)")
    assert (
        lines[3] == f"2026-11-23T10:06:10+00:00  retrained        2        drift: {DRIFT} (Job churn-train-1)"
    )


def test_the_last_rollback_from_status_when_the_registry_is_not_reached() -> None:
    status = {
        **STATUS,
        "rollout": {"abortedVersion": "3", "lastOutcome": "version 3 rolled back: p99 0.4 > 0.1"},
    }
    first = rows(status, None)[0]
    assert first == Row("-", "rolled back", "3", "version 3 rolled back: p99 0.4 > 0.1")


@pytest.mark.parametrize(
    ("retraining", "event", "cause"),
    [
        (
            {
                "state": "Training",
                "trigger": "schedule",
                "reason": "schedule '0 3 * * *' due",
                "job": "c-train-4",
            },
            "training",
            "schedule: schedule '0 3 * * *' due (Job c-train-4)",
        ),
        (
            {
                "state": "Failed",
                "trigger": "performance",
                "reason": "accuracy 0.61 < floor 0.7",
                "job": "c-train-2",
                "message": "NoModel: the trainer registered no version",
                "failures": 2,
                "nextAttemptAt": "2026-11-23T11:00:00Z",
            },
            "training failed",
            "NoModel: the trainer registered no version; 2 failure(s) in a row; next attempt after "
            "2026-11-23T11:00:00Z; it was started by performance: accuracy 0.61 < floor 0.7 (Job c-train-2)",
        ),
    ],
)
def test_a_running_or_failed_training(retraining: dict[str, Any], event: str, cause: str) -> None:
    found = rows({"retraining": retraining}, {})
    assert [(r.event, r.cause) for r in found] == [(event, cause)]


def test_nothing_to_list_prints_no_table() -> None:
    assert table(rows({"retraining": {"state": "Idle"}}, {})) == []
    assert render.history_text({"status": {}}, {}).splitlines()[0] == "no promoted version yet"


def test_long_causes_are_cut_and_the_table_stays_aligned() -> None:
    lines = table(
        [Row("2026-11-23T10:00:00Z", "rolled back", "12", "x" * 500), Row("-", "promoted", "1", "y")]
    )
    assert len(lines[1]) < 250 and lines[1].endswith("...")
    assert lines[2].index("promoted") == lines[1].index("rolled back")
