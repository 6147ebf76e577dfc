"""Model loading: trust is explicit, pickles never load silently, registry URIs must be pinned."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import runtime_models as models

from harness.models import SKLEARN_REQUIREMENTS
from mlrollout.runtime.loading import ModelLoadError, load_model, parse_model_uri


def test_registry_uris_must_be_pinned() -> None:
    assert parse_model_uri("models:/churn/7") == ("churn", "7")
    assert parse_model_uri("runs:/abc/model") == ("", "")
    assert parse_model_uri("/srv/model") == ("", "")
    for uri in ("models:/churn@champion", "models:/churn/Production", "models:/churn"):
        with pytest.raises(ModelLoadError, match="pinned to a version"):
            parse_model_uri(uri)


def test_untrusted_skops_types_are_refused(rf_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"not trusted: \['sklearn.tree._tree.Tree'\].*--trusted-types"):
        load_model(str(rf_path))
    m = load_model(str(rf_path), trusted_types=(models.TREE,))
    assert m.flavor == "sklearn" and m.task == "classification" and m.classes == [0, 1]
    assert m.schema.names == models.COLUMNS


def test_declared_types_are_trusted_only_on_request(rf_path: Path) -> None:
    # MLmodel lists skops_trusted_types written by whoever saved the model: not trusted by default.
    m = load_model(str(rf_path), trust_declared_types=True)
    assert m.flavor == "sklearn"


def test_pickles_need_allow_pickle(pickled_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cloudpickle.*--allow-pickle"):
        load_model(str(pickled_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = load_model(str(pickled_path), allow_pickle=True)
    assert m.flavor == "sklearn"


def test_pyfunc_fallback_and_its_pickle_guard(tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd

    class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input):  # type: ignore[no-untyped-def]
            return model_input["a"] * 2

    from mlflow.models import infer_signature

    x = pd.DataFrame({"a": [1.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(tmp_path / "py"), python_model=Doubler(), signature=infer_signature(x, x["a"] * 2)
        )
    with pytest.raises(ModelLoadError, match=r"pyfunc.*--allow-code"):
        load_model(str(tmp_path / "py"))
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(str(tmp_path / "py"), allow_code=True)
    m = load_model(str(tmp_path / "py"), allow_pickle=True, allow_code=True)
    assert m.flavor == "pyfunc"
    from mlrollout.runtime.schema import Batch

    out = m.predictor.predict(Batch(n=2, array=x.to_numpy()))
    assert out.tolist() == [2.0, 4.0]


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no MLmodel"):
        load_model(str(tmp_path))


@pytest.mark.services
def test_registry_and_run_uris_from_a_real_mlflow(
    mlflow_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, version, run_uri = register_forest(mlflow_server.uri, "runtime-loading")  # type: ignore[attr-defined]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)  # type: ignore[attr-defined]
    m = load_model(uri, cache_dir=str(tmp_path), trusted_types=(models.TREE,))
    assert (m.name, m.version, m.flavor) == ("runtime-loading", version, "sklearn")
    r = load_model(run_uri, cache_dir=str(tmp_path), trusted_types=(models.TREE,))
    assert r.version == "0" and r.schema.names == models.COLUMNS
    with pytest.raises(ModelLoadError, match="cannot download"):
        load_model("models:/no-such-model/1", cache_dir=str(tmp_path))


def register_forest(tracking_uri: str, name: str) -> tuple[str, str, str]:
    """Log and register a small forest on a real MLflow server: (models:/name/N, N, runs:/... URI)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    x, y = models.data()
    est = RandomForestClassifier(10, random_state=0, max_depth=6).fit(x, y)
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                est,
                name="model",
                signature=infer_signature(x, est.predict(x)),
                registered_model_name=name,
                skops_trusted_types=[models.TREE],
                pip_requirements=SKLEARN_REQUIREMENTS,
            )
    version = str(info.registered_model_version)
    return f"models:/{name}/{version}", version, f"runs:/{run.info.run_id}/model"


def _evil_model(root: Path) -> Path:
    """The reproduction from issue 7: a six-line MLmodel whose loader_module writes a file."""
    model = root / "evil"
    (model / "code").mkdir(parents=True)
    marker = root / "pwned"
    (model / "code" / "evil_loader.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "def _load_pyfunc(path):\n    raise RuntimeError('never a model')\n"
    )
    (model / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: evil_loader\n"
        "    code: code\n"
        "    env: conda.yaml\n"
        "    python_version: 3.11.0\n"
    )
    return marker


def test_arbitrary_loader_module_is_refused_by_default(tmp_path: Path) -> None:
    marker = _evil_model(tmp_path)
    with pytest.raises(ModelLoadError, match=r"pyfunc.*evil_loader.*--allow-code"):
        load_model(str(tmp_path / "evil"))
    assert not marker.exists(), "the loader module ran without --allow-code"


def test_runtime_start_up_refuses_code_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlrollout.runtime.__main__ import main

    for var in ("MLROLLOUT_ALLOW_CODE", "MLROLLOUT_ALLOW_PICKLE"):
        monkeypatch.delenv(var, raising=False)
    marker = _evil_model(tmp_path)
    assert main([str(tmp_path / "evil"), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "python_function" in err or "pyfunc" in err
    assert "--allow-code" in err
    assert not marker.exists()
