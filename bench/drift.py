"""`make bench-drift`: our drift verdict against Evidently's default preset, same data, same run.

1,000,000 rows x 20 columns (12 numeric, 8 categorical) in both reference and current, with a
shift in a few columns. Each side runs in a process of its own (same seed, same data), so each
peak RSS is its own: data generation plus that side's work. Prints times, peak RSS and the ratio;
JSON under bench/results/.

Ours is also timed from Parquet files read the monitor Job's way, with string categories (object
columns would be the slow case for pandas). The verdict always uses every row. CPU seconds are
printed next to wall seconds: on a shared machine they are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlrollout.monitor.job import read_reference
from mlrollout.monitor.stats.drift import DriftSettings, dataset_drift

NUMERIC, CATEGORICAL = 12, 8
PARTS = ("ours", "ours-parquet", "evidently")


def make_frame(rng: np.random.Generator, rows: int, shift: float, strings: bool = False) -> pd.DataFrame:
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        columns[f"num{i}"] = rng.normal(shift if i < 2 else 0.0, 1.0, size=rows)
    levels = np.array(["a", "b", "c", "d", "e"], dtype=object)
    for i in range(CATEGORICAL):
        p = [0.4, 0.3, 0.15, 0.1, 0.05] if not (shift and i == 0) else [0.2, 0.3, 0.15, 0.1, 0.25]
        values = levels[rng.choice(5, p=p, size=rows)]
        columns[f"cat{i}"] = values if strings else pd.Categorical(values)
    return pd.DataFrame(columns)


def frames(rows: int, strings: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    return make_frame(rng, rows, 0.0, strings), make_frame(rng, rows, 0.5, strings)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(figures: dict[str, Any], started: float, cpu_started: float) -> dict[str, Any]:
    return {**figures, "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu_started}


def run_part(part: str, rows: int) -> dict[str, Any]:
    """One side of the comparison, in this process."""
    if part == "ours-parquet":
        reference, current = frames(rows, strings=True)
        with tempfile.TemporaryDirectory() as folder:
            paths = [Path(folder) / "reference.parquet", Path(folder) / "current.parquet"]
            reference.to_parquet(paths[0], index=False)
            current.to_parquet(paths[1], index=False)
            del reference, current
            started, cpu_started = time.perf_counter(), cpu_seconds()
            reference, current = (read_reference(str(p)) for p in paths)
            result = dataset_drift(reference, current, DriftSettings())
            return timed({"verdict": result.verdict, "drifted": result.drifted_columns}, started, cpu_started)
    reference, current = frames(rows)
    if part == "ours":
        started, cpu_started = time.perf_counter(), cpu_seconds()
        result = dataset_drift(reference, current, DriftSettings())
        return timed({"verdict": result.verdict, "drifted": result.drifted_columns}, started, cpu_started)
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    started, cpu_started = time.perf_counter(), cpu_seconds()
    Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current), reference_data=Dataset.from_pandas(reference)
    )
    return timed({}, started, cpu_started)


def in_child(part: str, rows: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.drift", "--rows", str(rows), "--part", part],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # one side, in a child
    args = parser.parse_args()
    if args.part:
        figures = run_part(args.part, args.rows)
        print(json.dumps({**figures, "peak_rss_mib": round(peak_rss_mib(), 1)}))
        return

    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "columns": NUMERIC + CATEGORICAL,
    }
    parts = [p for p in PARTS if not (args.skip_evidently and p == "evidently")]
    for part in parts:
        figures = in_child(part, args.rows)
        result[part] = figures
        extra = f", {figures['verdict']} {figures['drifted']}" if "verdict" in figures else ""
        print(
            f"{part:>13}: {figures['seconds']:7.2f} s ({figures['cpu_seconds']:.2f} s CPU),"
            f" peak RSS {figures['peak_rss_mib']:5.0f} MiB{extra}"
        )
    if "evidently" in result:
        ratio = result["evidently"]["seconds"] / result["ours"]["seconds"]
        cpu_ratio = result["evidently"]["cpu_seconds"] / result["ours"]["cpu_seconds"]
        result["ratio"], result["cpu_ratio"] = round(ratio, 1), round(cpu_ratio, 1)
        print(f"Evidently's default preset takes {ratio:.1f}x as long as our verdict ({cpu_ratio:.1f}x CPU)")
    result["load_average"] = os.getloadavg()

    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"drift-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
