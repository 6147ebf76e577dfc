"""`make bench-drift`: our drift verdict against Evidently's default preset, same data, same run.

1,000,000 rows x 20 columns (12 numeric, 8 categorical) in both reference and current, with a
shift in a few columns. Prints times, peak memory of our part and the ratio; JSON under
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlrollout.monitor.stats.drift import DriftSettings, dataset_drift

NUMERIC, CATEGORICAL = 12, 8


def make_frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        columns[f"num{i}"] = rng.normal(shift if i < 2 else 0.0, 1.0, size=rows)
    levels = np.array(["a", "b", "c", "d", "e"])
    for i in range(CATEGORICAL):
        p = [0.4, 0.3, 0.15, 0.1, 0.05] if not (shift and i == 0) else [0.2, 0.3, 0.15, 0.1, 0.25]
        columns[f"cat{i}"] = pd.Categorical(levels[rng.choice(5, p=p, size=rows)])
    return pd.DataFrame(columns)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference, current = make_frame(rng, args.rows, 0.0), make_frame(rng, args.rows, 0.5)
    data_mib = peak_rss_mib()

    started = time.perf_counter()
    ours = dataset_drift(reference, current, DriftSettings())
    ours_seconds = time.perf_counter() - started
    ours_peak = peak_rss_mib()
    result: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "columns": NUMERIC + CATEGORICAL,
        "ours_seconds": round(ours_seconds, 3),
        "ours_peak_rss_mib": round(ours_peak, 1),
        "rss_after_data_mib": round(data_mib, 1),
        "ours_verdict": ours.verdict,
        "ours_drifted": ours.drifted_columns,
    }
    print(f"ours: {ours_seconds:.2f} s, peak RSS {ours_peak:.0f} MiB, {ours.verdict} {ours.drifted_columns}")

    if not args.skip_evidently:
        from evidently import Dataset, Report
        from evidently.presets import DataDriftPreset

        started = time.perf_counter()
        Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current), reference_data=Dataset.from_pandas(reference)
        )
        evidently_seconds = time.perf_counter() - started
        result["evidently_default_seconds"] = round(evidently_seconds, 3)
        result["ratio"] = round(evidently_seconds / ours_seconds, 1)
        print(f"evidently default preset: {evidently_seconds:.2f} s; ours is {result['ratio']}x faster")

    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"drift-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
