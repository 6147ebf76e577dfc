"""`make bench-abtest`: the A/B statistics by simulation, side by side on the same experiments.

For each case: A/A false-winner rates of our mSPRT (looked at after every batch), of the classic
mistake (a fixed-horizon z-test looked at after every batch) and of the fixed-horizon test looked at
once; then, with a true effect of the minimum detectable effect, the power of each and the mean
sample our test needed against the fixed-horizon test's planned sample. JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlrollout.rollout.abtest.planning import plan
from mlrollout.rollout.abtest.sequential import MetricKind
from mlrollout.rollout.abtest.simulation import fixed_horizon, msprt, naive_peeking, simulate

CASES: list[tuple[MetricKind, float, float, float, float]] = [
    # kind, candidate share, stable mean, mde, sd
    ("proportion", 0.5, 0.10, 0.02, 0.0),
    ("proportion", 0.2, 0.10, 0.02, 0.0),
    ("proportion", 0.5, 0.02, 0.005, 0.0),
    ("mean", 0.5, 10.0, 0.5, 5.0),
    ("mean", 0.3, 10.0, 0.5, 5.0),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    header = (
        f"{'case':<38} {'A/A mSPRT':>9} {'peeking':>8} {'fixed':>6} | {'power mSPRT':>11} {'fixed':>6}"
        f" | {'mean n / fixed n':>16} {'max n / fixed n':>15}"
    )
    print(f"{args.experiments} experiments per case, analysed after each of {args.batches} batches")
    print(header)
    for kind, share, base, mde, sd in CASES:
        p = plan(
            kind,
            mde,
            args.alpha,
            args.power,
            share,
            baseline=base if kind == "proportion" else None,
            variance=sd**2 if kind == "mean" else None,
        )
        stop = (p.sequential_stable, p.sequential_candidate)
        batch = math.ceil(sum(stop) / args.batches)
        fixed_n = p.fixed_stable + p.fixed_candidate
        aa = simulate(rng, kind, args.experiments, args.batches, batch, share, base, base, sd)
        ab = simulate(rng, kind, args.experiments, args.batches, batch, share, base, base + mde, sd)
        seq_ab = msprt(kind, ab, p.mixing_variance, args.alpha, stop)
        row = {
            "case": f"{kind} w={share} base={base} mde={mde}",
            "aa_msprt": float(np.mean(msprt(kind, aa, p.mixing_variance, args.alpha, stop).direction != 0)),
            "aa_peeking": float(np.mean(naive_peeking(kind, aa, args.alpha).direction != 0)),
            "aa_fixed": float(
                np.mean(fixed_horizon(kind, aa, args.alpha, p.fixed_stable, p.fixed_candidate).direction != 0)
            ),
            "power_msprt": float(np.mean(seq_ab.direction == 1)),
            "power_fixed": float(
                np.mean(fixed_horizon(kind, ab, args.alpha, p.fixed_stable, p.fixed_candidate).direction == 1)
            ),
            "mean_n_over_fixed": float(np.mean(seq_ab.stopped_at_requests)) / fixed_n,
            "max_n_over_fixed": sum(stop) / fixed_n,
            "fixed_n_per_arm": [p.fixed_stable, p.fixed_candidate],
        }
        rows.append(row)
        print(
            f"{row['case']:<38} {row['aa_msprt']:>9.4f} {row['aa_peeking']:>8.4f} {row['aa_fixed']:>6.4f}"
            f" | {row['power_msprt']:>11.4f} {row['power_fixed']:>6.4f}"
            f" | {row['mean_n_over_fixed']:>16.2f} {row['max_n_over_fixed']:>15.2f}"
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"abtest-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
