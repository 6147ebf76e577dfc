"""Segments, champion/challenger, fairness, signature, latency and the overall outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as fm
from sklearn import metrics as skm

from mlrollout.api.validation import ChampionChallenger, Fairness, GateMetric, LatencyCheck
from mlrollout.gate import champion, fairness, latency, signature
from mlrollout.gate.results import CheckResult, outcome
from mlrollout.gate.segments import check_metrics
from mlrollout.gate.tasks import Predictions

RNG = np.random.default_rng(3)
N = 400
FRAME = pd.DataFrame(
    {
        "plan": RNG.choice(["basic", "premium"], N),
        "gender": RNG.choice(["f", "m"], N),
        "tenure": RNG.integers(1, 60, N),
    }
)
Y = RNG.integers(0, 2, N)
SCORE = np.clip(Y * 0.35 + RNG.random(N) * 0.65, 0, 1)
PREDS = Predictions(Y, (SCORE >= 0.5).astype(int), SCORE, (0, 1))


def test_overall_and_segment_metrics() -> None:
    premium = (FRAME.plan == "premium").to_numpy()
    results = check_metrics(
        [
            GateMetric(name="roc_auc", min=0.5),
            GateMetric(name="precision", min=0.99, segment="plan == 'premium'"),
        ],
        FRAME,
        PREDS,
        "classification",
    )
    overall, segment = results
    assert (overall.name, overall.verdict) == ("metric:roc_auc", "passed")
    assert overall.value == pytest.approx(skm.roc_auc_score(Y, SCORE))
    assert segment.name == "metric:precision[plan == 'premium']"
    assert segment.verdict == "failed" and segment.threshold == 0.99
    assert segment.value == pytest.approx(skm.precision_score(Y[premium], PREDS.y_pred[premium]))
    assert segment.details["rows"] == int(premium.sum())


@pytest.mark.parametrize(
    ("metric", "words"),
    [
        (GateMetric(name="precision", min=0.5, segment="plan == 'gold'"), "selects no rows"),
        (GateMetric(name="precision", min=0.5, segment="plan === 'x'"), "cannot be evaluated"),
        (GateMetric(name="precision", min=0.5, segment="nosuchcolumn > 3"), "cannot be evaluated"),
        (GateMetric(name="ndcg", min=0.5), "unknown metric 'ndcg' for a classification task"),
    ],
)
def test_metric_that_cannot_run_is_an_error_not_a_verdict(metric: GateMetric, words: str) -> None:
    (result,) = check_metrics([metric], FRAME, PREDS, "classification")
    assert result.verdict == "error"
    assert words in (result.message or "")
    assert outcome([result]) == "error"


def test_accuracy_under_imbalance_warns() -> None:
    y = np.array([0] * 90 + [1] * 10)
    p = Predictions(y, np.zeros(100, dtype=int), np.zeros(100), (0, 1))
    frame = pd.DataFrame({"x": range(100)})
    results = check_metrics([GateMetric(name="accuracy", min=0.85)], frame, p, "classification")
    assert results[0].verdict == "passed" and results[0].value == pytest.approx(0.9)
    assert results[1].verdict == "warning" and results[1].value == pytest.approx(0.9)
    assert "always answering 0 scores 0.900" in (results[1].message or "")
    assert outcome(results) == "passed"
    balanced = Predictions(Y, PREDS.y_pred, SCORE, (0, 1))
    assert len(check_metrics([GateMetric(name="accuracy", min=0.7)], FRAME, balanced, "classification")) == 1
    # a floor the majority class alone reaches is worth a warning even when classes are balanced
    assert len(check_metrics([GateMetric(name="accuracy", min=0.5)], FRAME, balanced, "classification")) == 2


@pytest.mark.parametrize(
    ("metric", "min_delta", "ours", "theirs", "verdict", "delta"),
    [
        ("roc_auc", 0.0, 0.86, 0.85, "passed", 0.01),
        ("roc_auc", 0.02, 0.86, 0.85, "failed", 0.01),
        ("roc_auc", -0.02, 0.84, 0.85, "passed", -0.01),  # within the non-inferiority margin
        ("roc_auc", -0.005, 0.84, 0.85, "failed", -0.01),
        ("mae", 0.0, 1.0, 1.5, "passed", 0.5),  # lower is better
        ("mae", 0.0, 1.5, 1.0, "failed", -0.5),
    ],
)
def test_champion_challenger(
    monkeypatch: pytest.MonkeyPatch,
    metric: str,
    min_delta: float,
    ours: float,
    theirs: float,
    verdict: str,
    delta: float,
) -> None:
    values = {"candidate": ours, "champion": theirs}
    monkeypatch.setattr(champion, "compute", lambda task, name, p, k=None: values[p.classes[0]])
    task = "regression" if metric == "mae" else "classification"
    cand = Predictions(Y, SCORE, None, ("candidate",))
    champ = Predictions(Y, SCORE, None, ("champion",))
    r = champion.compare(ChampionChallenger(metric=metric, min_delta=min_delta), task, cand, champ, "3")  # type: ignore[arg-type]
    assert (r.verdict, r.threshold) == (verdict, min_delta)
    assert r.value == pytest.approx(delta)


def test_champion_challenger_on_real_predictions() -> None:
    worse = Predictions(Y, PREDS.y_pred, RNG.random(N), (0, 1))
    r = champion.compare(ChampionChallenger(metric="roc_auc"), "classification", worse, PREDS, "6")
    expected = skm.roc_auc_score(Y, worse.y_score) - skm.roc_auc_score(Y, SCORE)  # type: ignore[arg-type]
    assert r.verdict == "failed" and r.value == pytest.approx(expected)
    assert (
        champion.compare(ChampionChallenger(metric="roc_auc"), "classification", PREDS, None, "").verdict
        == "skipped"
    )


@pytest.mark.parametrize("metric", ["demographic_parity_difference", "equalized_odds_difference"])
def test_fairness_matches_fairlearn(metric: str) -> None:
    spec = Fairness(sensitive_features=["gender"], metric=metric, max=0.05)  # type: ignore[arg-type]
    r = fairness.check_fairness(spec, FRAME, PREDS, "classification")
    fn = getattr(fm, metric)
    expected = fn(Y, PREDS.y_pred, sensitive_features=FRAME.gender)
    assert r.value == pytest.approx(expected)
    assert r.verdict == ("failed" if expected > 0.05 else "passed")
    groups = r.details["groups"]
    female = (FRAME.gender == "f").to_numpy()
    assert groups["f"]["selection_rate"] == pytest.approx(PREDS.y_pred[female].mean())
    assert groups["f"]["count"] == female.sum()


def test_fairness_hand_computed_and_bad_input() -> None:
    frame = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4})
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    pred = np.array([1, 1, 1, 0, 0, 0, 1, 0])  # selection a 3/4, b 1/4
    p = Predictions(y, pred, None, (0, 1))
    r = fairness.check_fairness(Fairness(sensitive_features=["g"], max=0.2), frame, p, "classification")
    assert r.value == pytest.approx(0.5) and r.verdict == "failed"
    assert "a 0.750, b 0.250" in (r.message or "")
    missing = fairness.check_fairness(
        Fairness(sensitive_features=["race"], max=0.2), frame, p, "classification"
    )
    assert missing.verdict == "error" and "race" in (missing.message or "")


def test_signature() -> None:
    i = signature.Input
    champ = [i("a", "double"), i("b", "long"), i("c", "string")]
    assert signature.compare(champ, champ).verdict == "passed"
    assert signature.compare([*champ, i("d", "double", required=False)], champ).verdict == "passed"
    r = signature.compare([i("a", "double"), i("b", "double"), i("d", "double")], champ)
    assert r.verdict == "failed" and r.value == 3
    assert r.details == {"added": ["d"], "removed": ["c"], "retyped": ["b: long -> double"]}
    assert signature.compare(champ, None).verdict == "skipped"


def test_latency_summary() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    r = latency.summarize(LatencyCheck(p99_ms=50), samples)
    assert r.verdict == "failed"
    assert r.value == pytest.approx(np.percentile(samples, 99))
    assert r.details["p50_ms"] == pytest.approx(50.5)
    assert latency.summarize(LatencyCheck(p99_ms=100), samples).verdict == "passed"


def test_outcome_order() -> None:
    ok, bad, err = (CheckResult("a", "passed"), CheckResult("b", "failed"), CheckResult("c", "error"))
    assert outcome([]) == "passed"
    assert outcome([ok, CheckResult("w", "warning"), CheckResult("s", "skipped")]) == "passed"
    assert outcome([ok, bad]) == "failed"
    assert outcome([bad, err]) == "error"  # an open question is never taken as a rejection
