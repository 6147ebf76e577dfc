"""Load an MLflow model: an allow-list, not a deny-list.

Served by default: only the scikit-learn flavor saved with skops, whose types are all trusted.
Everything that runs code from the artifact needs an explicit opt-in, refused at start-up otherwise:
- pickle/cloudpickle artifacts (sklearn or pyfunc PythonModel): allow_pickle (--allow-pickle);
- any pyfunc model (its loader_module is imported, its `code` directory put on sys.path, a
  models-from-code file executed): allow_code (--allow-code).
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from mlrollout.runtime.fastpath import compile_forest
from mlrollout.runtime.schema import Batch, InputError, InputSchema

log = logging.getLogger("mlrollout.runtime.loading")

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>.+))?/?$")
PICKLE_FORMATS = {"pickle", "cloudpickle"}


class ModelLoadError(RuntimeError):
    """The model cannot be loaded as configured; the message says what to change."""


class Predictor(Protocol):
    def predict(self, batch: Batch) -> np.ndarray[Any, Any]: ...


@dataclass
class LoadedModel:
    name: str
    version: str
    flavor: str  # "sklearn" | "pyfunc"
    schema: InputSchema
    predictor: Predictor
    task: str  # "classification" | "regression" | "unknown"
    classes: list[Any] = field(default_factory=list)
    load_seconds: float = 0.0
    path: str = ""


def parse_model_uri(uri: str) -> tuple[str, str]:
    """(name, version) for registry URIs; refuses aliases and stages: the operator pins versions."""
    m = _REGISTRY_URI.match(uri)
    if not m:
        return "", ""
    if m.group("alias") or not (m.group("version") or "").isdigit():
        raise ModelLoadError(
            f"{uri!r}: registry URIs must be pinned to a version number (models:/name/7); "
            "aliases and stages resolve only at start-up and would drift between pods"
        )
    return m.group("name"), m.group("version")


def resolve_local(uri: str, cache_dir: str) -> str:
    """A local directory holding MLmodel: local paths as they are, anything else downloaded once."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if "://" not in uri and ":/" not in uri:
        if not (Path(uri) / "MLmodel").exists():
            raise ModelLoadError(f"{uri!r}: no MLmodel file in this directory")
        return uri
    import mlflow.artifacts

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri).strip("_")
    dst = Path(cache_dir) / "models" / safe
    if (dst / "MLmodel").exists():
        return str(dst)
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp))
    except Exception as exc:  # MlflowException, network, permission: all mean "cannot load"
        raise ModelLoadError(f"{uri!r}: cannot download the model: {exc}") from exc
    if not (Path(local) / "MLmodel").exists():
        raise ModelLoadError(f"{uri!r}: downloaded artifacts hold no MLmodel file")
    # Keep the directory that really holds MLmodel; rename is atomic, so concurrent workers are safe.
    try:
        os.replace(local, dst)
    except OSError:
        if not (dst / "MLmodel").exists():
            raise
    return str(dst)


class SklearnPredictor:
    """Calls the estimator directly: numpy in, numpy out, no pandas for numeric schemas."""

    def __init__(self, model: Any, schema: InputSchema) -> None:
        self.model = model
        self.schema = schema
        # Fitted on a DataFrame with these names: pass a frame only if the schema cannot give an array
        # in the same order; otherwise a numpy array with the warning silenced is much faster.
        names = getattr(model, "feature_names_in_", None)
        self.needs_frame = (
            not schema.numeric
            or (names is not None and list(map(str, names)) != schema.names)
            or selects_columns_by_name(model)
        )
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self.fast = None if self.needs_frame else compile_forest(model)

    def predict(self, batch: Batch) -> np.ndarray[Any, Any]:
        if self.fast is not None and batch.array is not None:
            return self.fast(batch.array)
        if self.needs_frame or batch.array is None:
            x: Any = batch.to_frame(self.schema.names) if self.schema.known else batch.frame
        else:
            x = batch.array
        return np.asarray(self.model.predict(x))


def selects_columns_by_name(model: Any) -> bool:
    """A ColumnTransformer (alone or first in a Pipeline) that picks its columns by name, as the
    built-in trainer's pipelines do: it refuses a numpy array even when every column is numeric."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        return selects_columns_by_name(steps[0][1])
    transformers = getattr(model, "transformers_", None) or getattr(model, "transformers", None)
    if not isinstance(transformers, list):
        return False
    for spec in transformers:
        columns = spec[2] if isinstance(spec, tuple) and len(spec) > 2 else None
        if isinstance(columns, str) or callable(columns):
            return True
        if isinstance(columns, (list, tuple)) and any(isinstance(c, str) for c in columns):
            return True
    return False


class PyfuncPredictor:
    def __init__(self, model: Any, schema: InputSchema) -> None:
        self.model = model
        self.schema = schema

    def predict(self, batch: Batch) -> np.ndarray[Any, Any]:
        frame = batch.to_frame(self.schema.names) if self.schema.known else batch.frame
        out = self.model.predict(frame)
        if hasattr(out, "to_numpy"):
            out = out.to_numpy()
        arr = np.asarray(out)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        return arr


def _untrusted_refusal(path: Path, trusted: tuple[str, ...]) -> list[str]:
    """The file's non-default types (all of them trusted), or the refusal naming those that are not."""
    import skops.io

    untrusted = list(skops.io.get_untrusted_types(file=str(path)))
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise ModelLoadError(
            f"{path.name}: skops file contains types that are not trusted: {refused}; "
            "review them and add them to --trusted-types (MLROLLOUT_TRUSTED_TYPES) to load"
        )
    return untrusted


def _pickle_refusal(name: str, fmt: str) -> str:
    return (
        f"{name}: the model is saved with {fmt}, which runs arbitrary code when loaded; "
        "re-log it with serialization_format='skops' or start with --allow-pickle if you trust it"
    )


def load_sklearn_artifact(path: Path, fmt: str, trusted: tuple[str, ...], allow_pickle: bool) -> Any:
    if fmt == "skops":
        import skops.io

        untrusted = _untrusted_refusal(path, trusted)
        return skops.io.load(str(path), trusted=untrusted)
    if fmt in PICKLE_FORMATS:
        if not allow_pickle:
            raise ModelLoadError(_pickle_refusal(path.name, fmt))
        log.warning("unpickling %s (%s) because --allow-pickle is set", path, fmt)
        if fmt == "cloudpickle":
            import cloudpickle

            with path.open("rb") as fh:
                return cloudpickle.load(fh)
        import pickle

        with path.open("rb") as fh:
            return pickle.load(fh)
    raise ModelLoadError(f"{path.name}: unknown scikit-learn serialization format {fmt!r}")


def _pyfunc_runs_code_refusal(uri: str, pyfunc_conf: dict[str, Any]) -> str:
    loader = str(pyfunc_conf.get("loader_module", "?"))
    extra = f" and its code directory {pyfunc_conf['code']!r}" if pyfunc_conf.get("code") else ""
    return (
        f"{uri!r}: refusing the pyfunc flavor (loader_module {loader!r}{extra}): loading it runs code "
        "from the artifact; only scikit-learn models saved with skops are served by default. "
        "Start with --allow-code (MLROLLOUT_ALLOW_CODE=true) if you trust this model"
    )


def _pyfunc_unpickles(pyfunc_conf: dict[str, Any]) -> bool:
    """Custom PythonModel flavors keep a cloudpickled object unless logged as models-from-code."""
    if pyfunc_conf.get("loader_module") == "mlflow.pyfunc.model":
        py_model = str(pyfunc_conf.get("python_model", ""))
        return not py_model.endswith(".py")
    return bool(pyfunc_conf.get("loader_module") == "mlflow.sklearn")


def _read_mlmodel(local: Path) -> dict[str, Any]:
    # Read MLmodel as YAML: importing mlflow costs seconds per worker process.
    meta = yaml.safe_load((local / "MLmodel").read_text()) or {}
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{local}: MLmodel is not a mapping")
    return meta


def _sklearn_artifact(local: Path, conf: dict[str, Any]) -> tuple[Path, str]:
    fmt = str(conf.get("serialization_format", "cloudpickle"))
    return local / str(conf.get("pickled_model", "model.pkl")), fmt


def _trusted(
    conf: dict[str, Any], trusted_types: tuple[str, ...], trust_declared_types: bool
) -> tuple[str, ...]:
    # Types the artifact itself declares are trusted only on request: the file's author wrote them.
    declared = tuple(conf.get("skops_trusted_types") or ()) if trust_declared_types else ()
    return tuple(trusted_types) + declared


def check_model(
    local: str,
    *,
    trusted_types: tuple[str, ...] = (),
    allow_pickle: bool = False,
    allow_code: bool = False,
    trust_declared_types: bool = False,
) -> None:
    """Every refusal load_model would make, without building the model (nothing deserialized, no
    code imported): the launcher's start-up check when workers load the model themselves."""
    path = Path(local)
    flavors: dict[str, Any] = _read_mlmodel(path).get("flavors") or {}
    if "sklearn" in flavors:
        artifact, fmt = _sklearn_artifact(path, flavors["sklearn"])
        trusted = _trusted(flavors["sklearn"], trusted_types, trust_declared_types)
        if fmt == "skops":
            _untrusted_refusal(artifact, trusted)
        elif fmt in PICKLE_FORMATS and not allow_pickle:
            raise ModelLoadError(_pickle_refusal(artifact.name, fmt))
        elif fmt not in PICKLE_FORMATS:
            raise ModelLoadError(f"{artifact.name}: unknown scikit-learn serialization format {fmt!r}")
        return
    _check_pyfunc(local, flavors, allow_pickle, allow_code)


def _check_pyfunc(uri: str, flavors: dict[str, Any], allow_pickle: bool, allow_code: bool) -> dict[str, Any]:
    pyconf = flavors.get("python_function")
    if pyconf is None:
        raise ModelLoadError(f"{uri!r}: the model has neither a sklearn nor a python_function flavor")
    if not allow_code:
        raise ModelLoadError(_pyfunc_runs_code_refusal(uri, pyconf))
    if _pyfunc_unpickles(pyconf) and not allow_pickle:
        raise ModelLoadError(
            f"{uri!r}: this pyfunc model is stored as a pickle; start with --allow-pickle if you trust it"
        )
    return dict(pyconf)


def load_model(
    uri: str,
    *,
    cache_dir: str = "/tmp/mlrollout",
    trusted_types: tuple[str, ...] = (),
    allow_pickle: bool = False,
    allow_code: bool = False,
    trust_declared_types: bool = False,
    name: str = "",
    version: str = "",
) -> LoadedModel:
    t0 = time.perf_counter()
    reg_name, reg_version = parse_model_uri(uri)
    local = Path(resolve_local(uri, cache_dir))
    meta = _read_mlmodel(local)
    schema = InputSchema.from_mlmodel(meta)
    flavors: dict[str, Any] = meta.get("flavors") or {}
    name = name or reg_name or local.name
    version = version or reg_version or "0"
    predictor: Predictor
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        artifact, fmt = _sklearn_artifact(local, conf)
        est = load_sklearn_artifact(
            artifact, fmt, _trusted(conf, trusted_types, trust_declared_types), allow_pickle
        )
        predictor, flavor = SklearnPredictor(est, schema), "sklearn"
        classes = list(getattr(est, "classes_", []))
        task = "classification" if classes else ("regression" if hasattr(est, "predict") else "unknown")
        if classes:
            classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
    else:
        _check_pyfunc(uri, flavors, allow_pickle, allow_code)
        import mlflow.pyfunc

        try:
            pyfunc = mlflow.pyfunc.load_model(str(local))
        except Exception as exc:
            raise ModelLoadError(f"{uri!r}: pyfunc load failed: {exc}") from exc
        predictor, flavor, classes, task = PyfuncPredictor(pyfunc, schema), "pyfunc", [], "unknown"
    seconds = time.perf_counter() - t0
    # One line per load: start-up loads the model once per serving process (tests count them).
    log.info(
        "loaded model %s version %s (%s) in %.2fs in pid %d", name, version, flavor, seconds, os.getpid()
    )
    return LoadedModel(
        name=name,
        version=str(version),
        flavor=flavor,
        schema=schema,
        predictor=predictor,
        task=task,
        classes=classes,
        load_seconds=seconds,
        path=str(local),
    )


def predict_checked(model: LoadedModel, batch: Batch) -> np.ndarray[Any, Any]:
    """Predict; with an open schema the model is the validator, so its complaints are client errors."""
    try:
        out = model.predictor.predict(batch)
    except (ValueError, TypeError, KeyError) as exc:
        if model.schema.known:
            raise
        raise InputError(
            f"the model rejected the input: {exc}"[:500], status=422, code="INVALID_INPUT"
        ) from exc
    if out.shape[0] != batch.n:
        raise RuntimeError(f"model returned {out.shape[0]} predictions for {batch.n} rows")
    return out
