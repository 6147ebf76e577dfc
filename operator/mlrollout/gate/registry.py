"""The gate Job's side of MLflow: the versions to judge, their lineage, and where the results go.

Every MLflow failure becomes CouldNotRun: an unreachable registry is never a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mlrollout.gate.results import CouldNotRun
from mlrollout.runtime.lineage import trusted_from_tags
from mlrollout.runtime.loading import LoadedModel, ModelLoadError, load_model, resolve_local

T = TypeVar("T")
REPORT_EXPERIMENT = "mlrollout-gate"
TRAINING_DATA_TAG = "mlrollout.training_data"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]


class GateRegistry:
    def __init__(self, tracking_uri: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        # models:/ downloads (runtime.loading) go through the process-wide registry URI.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:  # MlflowException, connection errors, odd replies: all "could not run"
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CouldNotRun(f"MLflow at {self.tracking_uri}: {what}: {text}"[:600]) from exc

    def version(self, name: str, version: str) -> VersionInfo:
        mv = self._call(f"reading {name} v{version}", lambda: self.client.get_model_version(name, version))
        return VersionInfo(name, str(mv.version), mv.run_id or None, mv.source or "", dict(mv.tags or {}))

    def alias(self, name: str, alias: str) -> str | None:
        """The version an alias points at, or None when it points nowhere (no champion yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise CouldNotRun(
                f"MLflow at {self.tracking_uri}: alias {alias!r} of {name}: {exc}"[:600]
            ) from exc
        except Exception as exc:
            raise CouldNotRun(
                f"MLflow at {self.tracking_uri}: alias {alias!r} of {name}: {exc}"[:600]
            ) from exc

    def load(
        self,
        name: str,
        version: str,
        cache_dir: str,
        trusted_types: tuple[str, ...],
        allow_code: bool = False,
    ) -> LoadedModel:
        """Download and load like a serving pod: skops with trusted types and those the version's
        lineage records from the allow-list (pyfunc only with allow_code), never a pickle."""
        uri = f"models:/{name}/{version}"
        lineage = trusted_from_tags(self.version(name, version).tags, name, version)
        try:
            local = resolve_local(uri, cache_dir)
            return load_model(
                local,
                cache_dir=cache_dir,
                trusted_types=tuple(dict.fromkeys((*trusted_types, *lineage))),
                allow_code=allow_code,
                name=name,
                version=version,
            )
        except ModelLoadError as exc:
            # A download may work next time; a pickle, code without allowCode or an untrusted type never will.
            permanent = "cannot download" not in str(exc)
            hint = " (spec.serving.allowCode)" if "--allow-code" in str(exc) else ""
            raise CouldNotRun(f"cannot load {uri}{hint}: {exc}"[:800], bad_input=permanent) from exc

    def training_data_uri(self, info: VersionInfo) -> str | None:
        """From the version's lineage: its tag, its run's tag, or the source of a dataset the run logged."""
        if info.tags.get(TRAINING_DATA_TAG):
            return info.tags[TRAINING_DATA_TAG]
        if not info.run_id:
            return None
        run_id = info.run_id
        run = self._call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        if run.data.tags.get(TRAINING_DATA_TAG):
            return str(run.data.tags[TRAINING_DATA_TAG])
        for di in getattr(run.inputs, "dataset_inputs", None) or []:
            if any(t.key == "mlflow.data.context" and t.value == "training" for t in di.tags or []):
                uri = _source_uri(di.dataset.source)
                if uri:
                    return uri
        return None

    def report_run(self, info: VersionInfo) -> str:
        """The version's own run; a run in experiment mlrollout-gate when the version has none."""
        if info.run_id:
            return info.run_id

        def create() -> str:
            exp = self.client.get_experiment_by_name(REPORT_EXPERIMENT)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(REPORT_EXPERIMENT)
            run = self.client.create_run(exp_id, run_name=f"gate-{info.name}-v{info.version}")
            self.client.set_terminated(run.info.run_id)
            return str(run.info.run_id)

        return self._call("creating a run for the report", create)

    def log_report(self, run_id: str, directory: str, doc: Mapping[str, Any], html_page: str) -> str:
        def log() -> None:
            self.client.log_text(run_id, json.dumps(doc, indent=2, default=str), f"{directory}/report.json")
            self.client.log_text(run_id, html_page, f"{directory}/report.html")

        self._call("logging the report", log)
        return f"runs:/{run_id}/{directory}/report.html"

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        def tag() -> None:
            for k, v in tags.items():
                self.client.set_model_version_tag(name, version, k, v)

        self._call(f"tagging {name} v{version}", tag)

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        def tag() -> None:
            for k, v in tags.items():
                self.client.set_tag(run_id, k, v)

        self._call(f"tagging run {run_id}", tag)


def _source_uri(source: str) -> str | None:
    """A dataset source is JSON such as {"uri": "s3://..."} or {"path": "..."}."""
    try:
        doc = json.loads(source)
    except (TypeError, ValueError):
        return None
    if isinstance(doc, dict):
        for key in ("uri", "url", "path"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    return None
