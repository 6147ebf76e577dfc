"""Leakage checks on constructed leaky and clean data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlrollout.gate.leakage import association, overlap, target_association, time_order

RNG = np.random.default_rng(11)


def churn(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    charges = rng.normal(70, 20, n).round(2)
    plan = rng.choice(["basic", "plus", "premium"], n)
    logit = -0.05 * tenure + 0.03 * (charges - 70) + (plan == "basic") * 0.8
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


TRAIN, HOLDOUT = churn(600, 1), churn(300, 2)
FEATURES = ["tenure", "charges", "plan"]


def test_clean_split_has_no_overlap() -> None:
    r = overlap(TRAIN, HOLDOUT, 0.0)
    assert (r.verdict, r.value) == ("passed", 0.0)


def test_copied_rows_are_found_whatever_the_dtypes() -> None:
    holdout = pd.concat([HOLDOUT.iloc[:270], TRAIN.iloc[:30]], ignore_index=True)
    holdout["tenure"] = holdout["tenure"].astype(float)  # e.g. read back from CSV with a NaN elsewhere
    r = overlap(TRAIN, holdout, 0.05)
    assert r.value == pytest.approx(0.1) and r.verdict == "failed"
    assert r.details["shared_rows"] == 30
    assert overlap(TRAIN, holdout, 0.2).verdict == "passed"


def test_target_copied_into_a_feature_is_leakage() -> None:
    leaky = HOLDOUT.assign(
        churn_flag=HOLDOUT.churned * 1.0, status=HOLDOUT.churned.map({0: "active", 1: "gone"})
    )
    r = target_association(leaky, [*FEATURES, "churn_flag", "status"], "churned", "classification", 0.99)
    assert r.verdict == "failed" and r.value == pytest.approx(1.0)
    assert "churn_flag" in (r.message or "") and "status" in (r.message or "")
    assert r.details["features"]["churn_flag"]["statistic"] == "roc_auc"
    assert r.details["features"]["status"]["statistic"] == "mutual_information"


def test_clean_features_pass_and_identifiers_are_not_leakage() -> None:
    clean = HOLDOUT.assign(customer_id=[f"c{i}" for i in range(len(HOLDOUT))])
    r = target_association(clean, [*FEATURES, "customer_id"], "churned", "classification", 0.99)
    assert r.verdict == "passed" and r.value < 0.9
    assert r.details["features"]["customer_id"]["statistic"] == "identifier"


def test_near_copy_with_noise_is_still_caught_and_a_noisy_proxy_is_not() -> None:
    y = pd.Series(RNG.integers(0, 2, 1000))
    near = y + RNG.normal(0, 0.05, 1000)  # threshold at 0.5 separates all but a few
    proxy = y + RNG.normal(0, 1.0, 1000)
    assert association(near, y, "classification")[0] > 0.99
    assert association(proxy, y, "classification")[0] < 0.8


def test_regression_association() -> None:
    y = pd.Series(RNG.normal(size=500))
    assert association(y * 3 + 1, y, "regression") == (pytest.approx(1.0), "spearman")
    assert association(pd.Series(RNG.normal(size=500)), y, "regression")[0] < 0.2
    r = target_association(pd.DataFrame({"y": y, "leak": y.rank()}), ["leak"], "y", "regression", 0.99)
    assert r.verdict == "failed"


def test_time_order() -> None:
    train = pd.DataFrame({"at": pd.date_range("2026-01-01", periods=10, freq="D")})
    later = pd.DataFrame({"at": pd.date_range("2026-01-10", periods=5, freq="D").astype(str)})
    earlier = pd.DataFrame({"at": pd.date_range("2026-01-08", periods=5, freq="D")})
    assert time_order(train, later, "at").verdict == "passed"
    r = time_order(train, earlier, "at")
    assert r.verdict == "failed" and r.value == pytest.approx(2 / 5)
    missing = time_order(train, earlier.rename(columns={"at": "when"}), "at")
    assert missing.verdict == "error" and "holdout has no time column" in (missing.message or "")
