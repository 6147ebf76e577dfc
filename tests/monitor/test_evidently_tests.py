"""Evidently's report, run with our registered tests, agrees with our verdict column by column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlrollout.monitor.evidently_tests import drift_report, report_summary
from mlrollout.monitor.stats.drift import DriftSettings, dataset_drift


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, size=n),
            # a tiny shift: significant on 20k rows, but below the effect-size floor
            "score": rng.normal(0.06 * shift, 1, size=n),
            "city": rng.choice(["a", "b", "c"], p=[0.6 - 0.3 * shift, 0.3, 0.1 + 0.3 * shift], size=n),
            "flag": rng.random(n) < 0.3,
        }
    )


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_report_agrees_with_verdict(shift: float, tmp_path: Path) -> None:
    rng = np.random.default_rng(int(shift) + 10)
    reference, current = _frame(rng, 20_000, 0.0), _frame(rng, 20_000, shift)
    settings = DriftSettings()
    columns = list(reference.columns)
    ours = dataset_drift(reference, current, settings, columns)
    snapshot = drift_report(reference, current, settings, columns)
    drifted, p_values = report_summary(snapshot)
    assert drifted == len(ours.drifted_columns)
    for result in ours.columns:
        assert p_values[result.column] == pytest.approx(result.p_value, rel=1e-9, abs=1e-300)
    if shift:
        assert sorted(ours.drifted_columns) == ["age", "city"]
        score = next(c for c in ours.columns if c.column == "score")
        assert score.p_value < settings.p_value and not score.drifted  # Evidently counted it out too
    else:
        assert ours.drifted_columns == []
    html = tmp_path / "report.html"
    snapshot.save_html(str(html))
    assert html.stat().st_size > 10_000
