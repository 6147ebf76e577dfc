"""`mlrollout gate`: judge one pinned model version before it may touch live traffic.

Reads its configuration (GateJobConfig JSON) from `--config FILE` or env MLROLLOUT_GATE_CONFIG,
writes the compact GateReport to the termination message (`--termination-log`, env
MLROLLOUT_TERMINATION_LOG, default /dev/termination-log), logs the full report (JSON and HTML) to
MLflow on the version's run and tags the version.

Exit codes: 0 the gate ran (passed or failed: read the report's outcome); 1 it could not run for a
reason a retry may fix (MLflow unreachable, dataset missing); 3 it could not run because of bad
input (a segment that does not parse, an unknown metric, no target column): retrying cannot help.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from mlrollout.api.gate import CONFIG_ENV, GateJobConfig, GateReport
from mlrollout.api.jobs import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRY
from mlrollout.jobs.entry import (
    BadConfig,
    add_termination_log_argument,
    limit_mlflow_retries,
    load_config,
    write_termination,
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlrollout gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help=f"GateJobConfig JSON or YAML file (default: env {CONFIG_ENV})")
    add_termination_log_argument(p)
    p.add_argument("--cache-dir", default=os.environ.get("MLROLLOUT_CACHE_DIR", "/tmp/mlrollout-gate"))
    return p.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    limit_mlflow_retries()
    try:
        config = load_config(GateJobConfig, args.config, CONFIG_ENV, "gate")
    except BadConfig as exc:
        report = GateReport(outcome="error", model_name="", version="", reason=str(exc)[:1024])
        write_report(args.termination_log, report)
        return EXIT_BAD_INPUT
    from mlrollout.gate.run import run_gate

    report, bad_input = run_gate(config, args.cache_dir)
    write_report(args.termination_log, report)
    if report.outcome != "error":
        return EXIT_OK
    return EXIT_BAD_INPUT if bad_input else EXIT_RETRY


def write_report(path: str, report: GateReport) -> None:
    from mlrollout.gate.report import termination_message

    write_termination(path, termination_message(report), "mlrollout gate")
