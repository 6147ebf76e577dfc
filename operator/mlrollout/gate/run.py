"""One gate run: load, predict, check, report. Every "could not run" ends as outcome error, with why."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlrollout.adapters.datasets.fsspec_reader import DatasetError, fingerprint, read_table
from mlrollout.api.gate import GateJobConfig, GateReport
from mlrollout.api.validation import Validation
from mlrollout.gate import champion, fairness, latency, leakage, report, signature
from mlrollout.gate.predict import infer_task, input_columns, predict
from mlrollout.gate.registry import GateRegistry, VersionInfo
from mlrollout.gate.results import CheckResult, CouldNotRun, error, outcome
from mlrollout.gate.segments import check_metrics
from mlrollout.gate.tasks import Predictions, Task
from mlrollout.runtime.lineage import trusted_from_tags
from mlrollout.runtime.loading import LoadedModel

log = logging.getLogger("mlrollout.gate")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(uri: str, fmt: Any = None) -> pd.DataFrame:
    try:
        return read_table(uri, fmt)
    except DatasetError as exc:
        raise CouldNotRun(str(exc)) from exc


def _inputs(model: LoadedModel) -> list[signature.Input] | None:
    if not model.schema.known:
        return []
    return [signature.Input(c.name, c.type, c.required) for c in model.schema.columns]


class GateRun:
    def __init__(self, config: GateJobConfig, cache_dir: str) -> None:
        self.config = config
        self.v: Validation = config.validation
        self.cache_dir = cache_dir
        self.trusted = tuple(config.trusted_types)
        self.context: dict[str, Any] = {
            "deployment": config.deployment,
            "attempt": config.attempt,
            "started_at": _now(),
            "seconds": {},
        }
        self.registry: GateRegistry | None = None
        self.info: VersionInfo | None = None

    def _timed(self, key: str, t0: float) -> None:
        self.context["seconds"][key] = round(time.perf_counter() - t0, 3)

    def checks(self) -> list[CheckResult]:
        """Raises CouldNotRun when nothing can be judged (model, registry, dataset)."""
        c, v = self.config, self.v
        t0 = time.perf_counter()
        self.registry = GateRegistry(c.tracking_uri)
        self.info = self.registry.version(c.model_name, c.version)
        # the latency check serves the candidate from its local copy: it needs its lineage's types too
        lineage = trusted_from_tags(self.info.tags, c.model_name, c.version)
        self.trusted = tuple(dict.fromkeys((*self.trusted, *lineage)))
        model = self.registry.load(c.model_name, c.version, self.cache_dir, self.trusted, c.allow_code)
        self._timed("load_model", t0)
        self.context["run_id"] = self.info.run_id
        champ_model, champ_version = self._champion()
        results: list[CheckResult] = []
        if v.signature is not None and v.signature.enabled:
            champ_inputs = None if champ_model is None else _inputs(champ_model)
            results.append(signature.compare(_inputs(model), champ_inputs))
        if v.dataset is None:
            return results
        t0 = time.perf_counter()
        holdout = _read(v.dataset.uri, v.dataset.format).reset_index(drop=True)
        self._timed("read_holdout", t0)
        self.context["holdout"] = {"uri": v.dataset.uri, "rows": len(holdout), "hash": fingerprint(holdout)}
        task = infer_task(model, v)
        self.context["task"] = task
        target, group = v.dataset.target, v.dataset.group
        t0 = time.perf_counter()
        preds = predict(model, holdout, target, task, group)
        self._timed("predict", t0)
        results += check_metrics(v.metrics, holdout, preds, task)
        if v.champion_challenger is not None:
            results.append(self._champion_check(task, preds, holdout, champ_model, champ_version))
        if v.leakage is not None and v.leakage.enabled:
            results += self._leakage(model, holdout, task, preds)
        if v.fairness is not None:
            results.append(fairness.check_fairness(v.fairness, holdout, preds, task))
        if v.latency is not None:
            results.append(self._latency(model, holdout))
        return results

    def _champion(self) -> tuple[LoadedModel | None, str]:
        v, c = self.v, self.config
        needed = v.champion_challenger is not None or (v.signature is not None and v.signature.enabled)
        if not needed or self.registry is None:
            return None, ""
        version = self.registry.alias(c.model_name, c.champion_alias)
        self.context["champion"] = {"alias": c.champion_alias, "version": version}
        if version is None or version == c.version:
            return None, version or ""
        return self.registry.load(c.model_name, version, self.cache_dir, self.trusted, c.allow_code), version

    def _champion_check(
        self, task: Task, preds: Predictions, holdout: pd.DataFrame, model: LoadedModel | None, version: str
    ) -> CheckResult:
        cc = self.v.champion_challenger
        assert cc is not None and self.v.dataset is not None
        theirs = None
        if model is not None:
            try:
                theirs = predict(model, holdout, self.v.dataset.target, task, self.v.dataset.group)
            except CouldNotRun as exc:
                return error(f"champion:{cc.metric}", f"champion v{version}: {exc.reason}")
        return champion.compare(cc, task, preds, theirs, version)

    def _leakage(
        self, model: LoadedModel, holdout: pd.DataFrame, task: Task, preds: Predictions
    ) -> list[CheckResult]:
        spec, dataset = self.v.leakage, self.v.dataset
        assert (
            spec is not None and dataset is not None and self.registry is not None and self.info is not None
        )
        features = input_columns(model, holdout, {dataset.target})
        results = [
            leakage.target_association(
                holdout, features, dataset.target, task, spec.max_association, preds.positive
            )
        ]
        uri = spec.training_data_uri or self.registry.training_data_uri(self.info)
        self.context["training_data"] = uri
        if not uri:
            why = "no training data known: set leakage.trainingDataUri or tag mlrollout.training_data"
            results.append(CheckResult("leakage:overlap", "skipped", message=why))
            return results
        try:
            train = _read(uri)
        except CouldNotRun as exc:
            return [*results, error("leakage:overlap", exc.reason)]
        results.append(leakage.overlap(train, holdout, spec.max_overlap))
        if spec.time_column:
            results.append(leakage.time_order(train, holdout, spec.time_column))
        return results

    def _latency(self, model: LoadedModel, holdout: pd.DataFrame) -> CheckResult:
        spec, dataset = self.v.latency, self.v.dataset
        assert spec is not None and dataset is not None
        columns = input_columns(model, holdout, {dataset.target})
        sample = holdout[columns].head(spec.requests)
        rows = json.loads(sample.to_json(orient="split", date_format="iso", index=False))["data"]
        t0 = time.perf_counter()
        try:
            samples = latency.measure(
                model.path,
                columns,
                rows,
                spec.requests,
                self.trusted,
                self.cache_dir,
                allow_code=self.config.allow_code,
            )
        except CouldNotRun as exc:
            return error(latency.NAME, exc.reason)
        finally:
            self._timed("latency", t0)
        return latency.summarize(spec, samples)

    def publish(self, rep: GateReport, results: Sequence[CheckResult]) -> GateReport:
        """The full report to MLflow and the tags on the version; a failure here is noted, not fatal."""
        if self.registry is None or self.info is None:
            return rep
        c = self.config
        try:
            run_id = self.registry.report_run(self.info)
            directory = f"mlrollout/gate/v{c.version}/attempt-{c.attempt}"
            doc = report.full(rep, results, self.context)
            uri = self.registry.log_report(run_id, directory, doc, report.render_html(doc))
            rep = rep.model_copy(update={"report_uri": uri})
            tags = report.version_tags(rep, _now())
            self.registry.tag_version(c.model_name, c.version, tags)
            self.registry.tag_run(run_id, tags)
        except CouldNotRun as exc:
            log.warning("report not published: %s", exc.reason)
            note = f"report not published: {exc.reason}"
            rep = rep.model_copy(
                update={"reason": f"{rep.reason}; {note}"[:1024] if rep.reason else note[:1024]}
            )
        return rep


def run_gate(config: GateJobConfig, cache_dir: str) -> tuple[GateReport, bool]:
    """The report, and whether an error comes from bad input (a retry cannot fix it)."""
    gate = GateRun(config, cache_dir)
    bad_input = False
    try:
        results = gate.checks()
        result = outcome(results)
        errors = [r for r in results if r.verdict == "error"]
        bad_input = any(r.details.get("bad_input") for r in errors)
        reason = _reason(results)
    except CouldNotRun as exc:
        results, result, reason, bad_input = [], "error", exc.reason, exc.bad_input
    rep = report.compact(result, config.model_name, config.version, results, reason)
    return gate.publish(rep, results), bad_input


def _reason(results: Sequence[CheckResult]) -> str | None:
    errors = [r for r in results if r.verdict == "error"]
    failed = [r for r in results if r.verdict == "failed"]
    picked = errors or failed
    if not picked:
        return None
    head = "could not run" if errors else "failed"
    return f"{head}: " + "; ".join(f"{r.name}: {r.message or r.verdict}" for r in picked)
