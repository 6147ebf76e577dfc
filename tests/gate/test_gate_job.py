"""`mlrollout gate` in-process against a real MLflow server: a full pass, and every "could not run"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from churn import HIGH_RISK, TARGET

from conftest import ChurnModels
from mlrollout.api.gate import GateReport
from mlrollout.gate.job import main
from mlrollout.gate.lineage import Lineage, read_history, read_lineage

pytestmark = pytest.mark.services


def config(models: ChurnModels, kind: str, **validation: Any) -> dict[str, Any]:
    return {
        "modelName": models.name,
        "version": models.versions[kind],
        "trackingUri": models.tracking_uri,
        "championAlias": "champion",
        "deployment": "ml/churn",
        "validation": {"dataset": {"uri": str(models.holdout), "target": TARGET}, **validation},
    }


def run(tmp_path: Path, doc: dict[str, Any] | str) -> tuple[int, GateReport]:
    cfg, term = tmp_path / "gate.json", tmp_path / "termination-log"
    cfg.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    code = main(
        ["--config", str(cfg), "--termination-log", str(term), "--cache-dir", str(tmp_path / "cache")]
    )
    return code, GateReport.model_validate_json(term.read_text())


def test_good_candidate_passes_every_check_and_is_reported_in_mlflow(
    tmp_path: Path, churn_models: ChurnModels
) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    doc = config(
        churn_models,
        "good",
        metrics=[{"name": "roc_auc", "min": 0.84}, {"name": "precision", "min": 0.7, "segment": HIGH_RISK}],
        championChallenger={"metric": "roc_auc", "minDelta": 0.0},
        leakage={"enabled": True},
        fairness={"sensitiveFeatures": ["gender"], "max": 0.1},
        signature={"enabled": True},
        latency={"p99Ms": 5000, "requests": 20},
    )
    doc["championAlias"] = "baseline"  # the weaker model: the good one must beat it
    code, rep = run(tmp_path, doc)
    checks = {c.name: c for c in rep.checks}
    assert (code, rep.outcome) == (0, "passed"), rep
    assert set(checks) == {
        "signature",
        "metric:roc_auc",
        f"metric:precision[{HIGH_RISK}]",
        "champion:roc_auc",
        "leakage:target-association",
        "leakage:overlap",
        "fairness:demographic_parity_difference",
        "latency:p99",
    }
    assert all(c.verdict == "passed" for c in checks.values()), checks
    assert checks["metric:roc_auc"].value is not None and checks["metric:roc_auc"].value > 0.84
    assert (
        checks["champion:roc_auc"].value is not None and checks["champion:roc_auc"].value > 0
    )  # beats baseline
    assert checks["leakage:overlap"].value == 0.0  # training data found through the lineage tag
    assert checks["latency:p99"].threshold == 5000

    client = MlflowClient(churn_models.tracking_uri)
    tags = client.get_model_version(churn_models.name, churn_models.versions["good"]).tags
    assert tags["mlrollout.gate"] == "passed"
    assert tags["mlrollout.gate.metric.roc_auc"] == "passed"
    assert tags["mlrollout.gate.report_uri"] == rep.report_uri
    assert rep.report_uri and rep.report_uri.endswith("report.html")
    local = Path(
        download_artifacts(rep.report_uri.replace("report.html", "report.json"), dst_path=str(tmp_path))
    )
    full = json.loads(local.read_text())
    groups = next(c for c in full["checks"] if c["name"].startswith("fairness"))["details"]["groups"]
    assert set(groups) == {"f", "m"} and groups["f"]["count"] > 0
    assert full["context"]["holdout"]["rows"] == 2000
    assert "<table>" in Path(download_artifacts(rep.report_uri, dst_path=str(tmp_path / "h"))).read_text()

    # lineage, as `kubectl mlrollout history` reads it
    lin = read_lineage(churn_models.tracking_uri, churn_models.name, churn_models.versions["good"])
    assert isinstance(lin, Lineage), lin
    assert lin.gate == "passed" and lin.gate_checks["metric.roc_auc"] == "passed"
    assert lin.gate_report_uri == rep.report_uri and lin.params == {"kind": "good"}
    assert lin.training_data == str(churn_models.train) and "champion" in lin.aliases
    history = read_history(churn_models.tracking_uri, churn_models.name, limit=3)
    assert isinstance(history, list) and [h.version for h in history] == ["6", "5", "4"]


@pytest.mark.parametrize(
    ("case", "change", "code", "words"),
    [
        (
            "missing dataset",
            {"dataset": {"uri": "/nonexistent/holdout.parquet", "target": TARGET}},
            1,
            "does not exist",
        ),
        (
            "empty segment",
            {"metrics": [{"name": "precision", "min": 0.7, "segment": "contract == 'lifetime'"}]},
            3,
            "selects no rows",
        ),
        (
            "bad segment",
            {"metrics": [{"name": "precision", "min": 0.7, "segment": "contract =="}]},
            3,
            "cannot be evaluated",
        ),
        (
            "unknown metric",
            {"metrics": [{"name": "rmse", "max": 1}]},
            3,
            "unknown metric 'rmse' for a classification task",
        ),
        (
            "no target",
            {"dataset": {"uri": "HOLDOUT", "target": "cancelled"}},
            3,
            "no target column 'cancelled'",
        ),
    ],
)
def test_could_not_run_is_an_error_never_a_verdict(
    tmp_path: Path, churn_models: ChurnModels, case: str, change: dict[str, Any], code: int, words: str
) -> None:
    doc = config(churn_models, "good", metrics=[{"name": "roc_auc", "min": 0.84}])
    doc["validation"].update(json.loads(json.dumps(change).replace("HOLDOUT", str(churn_models.holdout))))
    got, rep = run(tmp_path, doc)
    assert (got, rep.outcome) == (code, "error"), case
    assert words in (rep.reason or ""), rep.reason
    tags = _tags(churn_models, "good")
    assert tags.get("mlrollout.gate") != "failed"  # never taken as a rejection


def _tags(models: ChurnModels, kind: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(models.tracking_uri).get_model_version(models.name, models.versions[kind]).tags)


def test_unreachable_mlflow_and_bad_config(
    tmp_path: Path, churn_models: ChurnModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    doc = config(churn_models, "good", metrics=[{"name": "roc_auc", "min": 0.84}])
    doc["trackingUri"] = "http://127.0.0.1:9"  # discard port: nothing listens
    code, rep = run(tmp_path, doc)
    assert (code, rep.outcome) == (1, "error") and "MLflow at http://127.0.0.1:9" in (rep.reason or "")
    code, rep = run(tmp_path, '{"modelName": "x"}')
    assert (code, rep.outcome) == (3, "error") and "invalid gate configuration" in (rep.reason or "")
