"""Lineage read back from MLflow's documents (pure) and from the real server after a gate run."""

from __future__ import annotations

from mlrollout.gate.lineage import LineageProblem, lineage_from, read_lineage

MV = {
    "name": "churn",
    "version": "8",
    "run_id": "r1",
    "source": "models:/m-1",
    "creation_timestamp": "1700000000000",
    "aliases": ["challenger"],
    "tags": [
        {"key": "mlrollout.gate", "value": "failed"},
        {"key": "mlrollout.gate.metric.roc_auc", "value": "failed"},
        {"key": "mlrollout.gate.leakage.overlap", "value": "passed"},
        {"key": "mlrollout.gate.report_uri", "value": "runs:/r1/x/report.html"},
        {"key": "mlrollout.gate.at", "value": "2026-11-23T07:00:00Z"},
        {"key": "mlrollout.rollout", "value": "rejected"},
        {"key": "mlrollout.rollout.reason", "value": "gate failed"},
        {"key": "mlrollout.data_hash", "value": "version-hash"},
    ],
}
RUN = {
    "data": {
        "params": [{"key": "C", "value": "1.0"}],
        "tags": [
            {"key": "mlrollout.data_hash", "value": "run-hash"},
            {"key": "mlrollout.parent_version", "value": "7"},
            {"key": "mlrollout.trigger", "value": "drift"},
            {"key": "mlrollout.training_data", "value": "s3://b/train.parquet"},
        ],
    }
}


def test_lineage_from_documents() -> None:
    lin = lineage_from(MV, RUN)
    assert (lin.model_name, lin.version, lin.run_id, lin.aliases) == ("churn", "8", "r1", ("challenger",))
    assert lin.data_hash == "version-hash"  # version tags win over run tags
    assert (lin.parent_version, lin.trigger, lin.training_data) == ("7", "drift", "s3://b/train.parquet")
    assert lin.params == {"C": "1.0"}
    assert lin.gate == "failed" and lin.gate_report_uri == "runs:/r1/x/report.html"
    assert lin.gate_checks == {"metric.roc_auc": "failed", "leakage.overlap": "passed"}
    assert (lin.rollout, lin.rollout_reason) == ("rejected", "gate failed")
    bare = lineage_from({"name": "churn", "version": "1"}, None)
    assert bare.gate is None and bare.params == {} and bare.run_id is None


def test_unreachable_registry_is_a_problem_not_an_exception() -> None:
    got = read_lineage("http://127.0.0.1:9", "churn", "1", timeout=1)
    assert isinstance(got, LineageProblem) and got.reason == "RegistryUnreachable"
