"""Our two drift tests registered with Evidently 0.7 as custom stat tests.

Evidently then draws its HTML report with our decisions (significance AND effect-size floor), so the
report and status.monitoring agree column by column. Its own defaults differ: it switches to
distance measures above 1,000 rows, and its `chisquare` is a goodness-of-fit test that over-alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from mlrollout.monitor.stats.drift import ColumnKind, DriftSettings, column_drift, column_kind


def _stat_test(kind: ColumnKind, settings: DriftSettings) -> StatTest:
    # the floor is part of the name: Evidently keys registered tests by name
    name = f"mlrollout-{'ks' if kind == 'numeric' else 'chi2-homogeneity'}-floor-{settings.min_effect_size:g}"
    stat_test = StatTest(
        name=name,
        display_name=f"{'K-S' if kind == 'numeric' else 'chi-squared homogeneity'} p_value",
        allowed_feature_types=[ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical],
        default_threshold=settings.p_value,
    )

    def run(
        reference: pd.Series, current: pd.Series, _feature_type: Any, threshold: float
    ) -> tuple[float, bool]:
        result = column_drift(
            str(reference.name), reference, current, replace(settings, p_value=threshold), kind
        )
        return result.p_value, result.drifted

    register_stattest(stat_test, run)
    return stat_test


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, columns: Sequence[str]
) -> Snapshot:
    """Evidently's data-drift report over `columns`, decided by our tests."""
    numeric = [c for c in columns if column_kind(reference[c]) == "numeric"]
    categorical = [c for c in columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(
        columns=list(columns),
        num_method=_stat_test("numeric", settings),
        cat_method=_stat_test("categorical", settings),
        threshold=settings.p_value,
        drift_share=settings.drift_share,
    )
    ref = Dataset.from_pandas(_as_category_strings(reference, categorical), data_definition=definition)
    cur = Dataset.from_pandas(_as_category_strings(current, categorical), data_definition=definition)
    return Report([preset]).run(current_data=cur, reference_data=ref)


def _as_category_strings(frame: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    # booleans are categories for us; Evidently would otherwise treat them as numbers
    return frame.assign(**{c: frame[c].astype("string") for c in categorical}) if categorical else frame


def report_summary(snapshot: Snapshot) -> tuple[int, dict[str, float]]:
    """(number of drifted columns, p-value per column) as Evidently computed them."""
    drifted = 0
    p_values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        if config["type"].endswith("DriftedColumnsCount"):
            drifted = int(value["count"])
        elif config["type"].endswith("ValueDrift"):
            p_values[str(config["column"])] = float(value)
    return drifted, p_values
