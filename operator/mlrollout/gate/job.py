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
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from mlrollout.api.gate import GateJobConfig, GateReport
from mlrollout.gate.results import CouldNotRun

CONFIG_ENV = "MLROLLOUT_GATE_CONFIG"
TERMINATION_ENV = "MLROLLOUT_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
EXIT_RAN, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 3


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlrollout gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help=f"GateJobConfig JSON or YAML file (default: env {CONFIG_ENV})")
    p.add_argument("--termination-log", default=os.environ.get(TERMINATION_ENV, DEFAULT_TERMINATION_LOG))
    p.add_argument("--cache-dir", default=os.environ.get("MLROLLOUT_CACHE_DIR", "/tmp/mlrollout-gate"))
    return p.parse_args(list(argv))


def load_config(path: str | None) -> GateJobConfig:
    import yaml

    if path:
        text = Path(path).read_text()
    elif os.environ.get(CONFIG_ENV):
        text = os.environ[CONFIG_ENV]
    else:
        raise CouldNotRun(f"no configuration: pass --config FILE or set {CONFIG_ENV}", True)
    try:
        return GateJobConfig.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise CouldNotRun(f"invalid gate configuration: {exc}"[:1000], True) from exc


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    # The MLflow client retries a dead server for minutes; the Job's own retries (and the operator's
    # backoff) are the place for that.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    try:
        config = load_config(args.config)
    except CouldNotRun as exc:
        report = GateReport(outcome="error", model_name="", version="", reason=exc.reason[:1024])
        write_termination(args.termination_log, report)
        return EXIT_BAD_INPUT
    from mlrollout.gate.run import run_gate

    report, bad_input = run_gate(config, args.cache_dir)
    write_termination(args.termination_log, report)
    if report.outcome != "error":
        return EXIT_RAN
    return EXIT_BAD_INPUT if bad_input else EXIT_RETRY


def write_termination(path: str, report: GateReport) -> None:
    from mlrollout.gate.report import termination_message

    text = termination_message(report)
    print(text, flush=True)
    try:
        Path(path).write_text(text)
    except OSError as exc:
        print(f"mlrollout gate: cannot write the termination message to {path}: {exc}", file=sys.stderr)
